// Java test program for migrate (Debian's openjdk-17): a map and a pool
// of worker threads, folded every step, run with the JVM's defaults (its
// performance counters in /tmp/hsperfdata_<user>/<pid>, a file it maps
// shared and writes all the time).
//
// Protocol: "start", one "step N ..." line per step, then "done <sum>".
// Steps are paced with a 30 ms sleep unless MIGRATE_TEST_NOSLEEP is set
// (no output changes).
import java.util.HashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

public class Steps {
    static long mix(long x) {
        x ^= x >>> 33;
        x *= 0xff51afd7ed558ccdL;
        x ^= x >>> 33;
        x *= 0xc4ceb9fe1a85ec53L;
        return x ^ (x >>> 33);
    }

    public static void main(String[] args) throws Exception {
        boolean nosleep = System.getenv("MIGRATE_TEST_NOSLEEP") != null;
        System.out.println("start");
        HashMap<Long, Long> table = new HashMap<>();
        for (long k = 0; k < 20000; k++) table.put(k, mix(k));
        ExecutorService pool = Executors.newFixedThreadPool(4);
        long sum = 0;
        for (int s = 1; s <= 60; s++) {
            final long seed = s;
            Future<Long> f = pool.submit(() -> mix(seed * 7));
            long k = Long.remainderUnsigned(mix(s), 20000);
            table.put(k, mix(table.get(k) ^ f.get()));
            sum += table.get(k);
            System.out.println(String.format("step %d %016x", s, sum));
            System.out.flush();
            if (!nosleep) Thread.sleep(30);
        }
        pool.shutdown();
        System.out.println(String.format("done %016x", sum));
    }
}
