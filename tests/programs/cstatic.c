/*
 * Linked statically (no LD_PRELOAD takes hold, so no libmigrate.so): reads
 * stdin until end of file, then exits 3. cchildren's "static" mode runs
 * it as its child, fed through a pipe.
 */
#include <errno.h>
#include <unistd.h>

int main(void)
{
    char b[64];
    ssize_t n;
    while ((n = read(0, b, sizeof b)) != 0)
        if (n < 0 && errno != EINTR)
            return 1;
    return 3;
}
