"""A TCP server whose accepted connection has ended but is still open
(the client closed, the server shut its side down and has not closed
the socket yet): what a server holds for a moment after every request.

Protocol: "start", "step N" lines, then "done" and what the dead
connection reads. MIGRATE_TEST_NOSLEEP makes the steps unpaced.
"""
import os
import socket
import sys
import time

nosleep = "MIGRATE_TEST_NOSLEEP" in os.environ
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", 0))
listener.listen()
client = socket.create_connection(listener.getsockname())
conn, _ = listener.accept()
conn.sendall(b"response")
client.recv(100)
client.close()
conn.shutdown(socket.SHUT_WR)
# Wait until the client's FIN has arrived: the connection is over.
while conn.recv(100):
    pass
print("start", flush=True)
for i in range(1, 41):
    print(f"step {i}", flush=True)
    if not nosleep:
        time.sleep(0.05)
print(f"done {conn.recv(100)!r} {listener.getsockname()[0]}", flush=True)
