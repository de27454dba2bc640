# Ruby test program for migrate (Debian's ruby, 3.1): a hash of 50k
# entries and a thread, folded every step. Ruby keeps a POSIX timer (its
# thread scheduler's) and deletes it at exit: a restore must bring it
# back with the same id, or the interpreter crashes as it exits.
#
# Protocol: "start", one "step N ..." line per step, then "done <sum>".
# Steps are paced with a 30 ms sleep unless MIGRATE_TEST_NOSLEEP is set
# (no output changes).
$stdout.sync = true
STEPS = 60
MASK = (1 << 64) - 1

def mix(x)
  x ^= x >> 33
  x = (x * 0xFF51AFD7ED558CCD) & MASK
  x ^= x >> 33
  x = (x * 0xC4CEB9FE1A85EC53) & MASK
  x ^ (x >> 33)
end

nosleep = ENV.key?("MIGRATE_TEST_NOSLEEP")
puts "start"
table = {}
50_000.times { |k| table[k] = mix(k) }
queue = Queue.new
worker = Thread.new do
  acc = 0
  while (v = queue.pop)
    acc = mix(acc ^ v)
  end
  acc
end
sum = 0
(1..STEPS).each do |s|
  k = mix(s) % 50_000
  table[k] = mix(table[k] ^ s)
  sum = (sum + table[k]) & MASK
  queue << sum
  puts format("step %d %016x", s, sum)
  sleep 0.03 unless nosleep
end
queue << nil
puts format("done %016x", worker.value)
