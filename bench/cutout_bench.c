/* cutout_bench: time cv_cutout_into from C, the way a C/Julia/MATLAB caller uses the library.
 *
 *   cutout_bench URL MIP X0 Y0 Z0 X1 Y1 Z1 REPEATS [OPTIONS_JSON]
 *
 * Opens URL (cv_open with OPTIONS_JSON, or NULL), allocates the output buffer once
 * (cv_cutout_len bytes), reads the box [X0,Y0,Z0)..[X1,Y1,Z1) at MIP into it REPEATS times, and
 * prints one JSON line:
 *   {"url":..., "mip":..., "box":[...], "bytes":N, "open_s":S, "runs_s":[...],
 *    "rss_before_kb":K, "max_rss_kb":K, "checksum":"0x..."}
 * max_rss_kb is getrusage(RUSAGE_SELF).ru_maxrss after the runs (peak resident set, KiB);
 * rss_before_kb is the same right after cv_open, before the buffer is allocated. Linux carries
 * ru_maxrss over from the parent across fork+exec (a big parent inflates it), so hwm_kb and
 * hwm_before_kb give VmHWM from /proc/self/status, this program's own peak; -1 if unavailable.
 * cpu_s has the process CPU time (all threads, user+system) of each run.
 * checksum is the sum, modulo 2^64, of the buffer read as little-endian uint64 words (a short
 * tail is zero-padded), so other readers can be checked against the same bytes.
 * With CUTOUT_BENCH_DUMP=PATH in the environment, the buffer is also written to PATH after the
 * runs (for comparing outputs; not timed, and after max_rss_kb is taken).
 * With CUTOUT_BENCH_HUGEPAGES=1 the buffer is 2 MiB-aligned and madvise(MADV_HUGEPAGE)'d, as
 * numpy does for its large arrays (for comparing TLB effects; the default is plain malloc).
 * Exit status: 0 on success, 1 on a library error (message on stderr), 2 on bad arguments.
 *
 * Build: cc -O2 -Iinclude bench/cutout_bench.c -Ltarget/release -lcloudvolume -Wl,-rpath,...
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#include "cloudvolume.h"
#include "bench_util.h"

static void usage(void) {
    fprintf(stderr, "usage: cutout_bench URL MIP X0 Y0 Z0 X1 Y1 Z1 REPEATS [OPTIONS_JSON]\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc != 10 && argc != 11) usage();
    const char *url = argv[1];
    int64_t mip, lo[3], hi[3], repeats;
    if (!parse_i64(argv[2], &mip) || mip < 0 || mip > UINT32_MAX) usage();
    for (int d = 0; d < 3; d++) {
        if (!parse_i64(argv[3 + d], &lo[d]) || !parse_i64(argv[6 + d], &hi[d])) usage();
    }
    if (!parse_i64(argv[9], &repeats) || repeats < 1) usage();
    const char *options = argc == 11 ? argv[10] : NULL;

    cv_volume *vol = NULL;
    double t0 = now_s();
    if (cv_open(url, options, &vol) != CV_OK) {
        fprintf(stderr, "cutout_bench: cv_open(%s): %s\n", url, cv_last_error());
        return 1;
    }
    double open_s = now_s() - t0;
    long rss_before = max_rss_kb();
    long hwm_before = hwm_kb();

    size_t n = 0;
    if (cv_cutout_len(vol, lo, hi, &n) != CV_OK) {
        fprintf(stderr, "cutout_bench: cv_cutout_len: %s\n", cv_last_error());
        cv_free(vol);
        return 1;
    }
    unsigned char *buf = NULL;
    const char *huge = getenv("CUTOUT_BENCH_HUGEPAGES");
    int hugepages = huge && *huge && strcmp(huge, "0") != 0;
    if (hugepages) {
        size_t align = (size_t)2 << 20;
        if (posix_memalign((void **)&buf, align, n ? n : 1) != 0) buf = NULL;
#ifdef MADV_HUGEPAGE
        if (buf) madvise(buf, (n + align - 1) / align * align, MADV_HUGEPAGE);
#endif
    } else {
        buf = malloc(n ? n : 1);
    }
    if (!buf) {
        fprintf(stderr, "cutout_bench: cannot allocate %zu bytes\n", n);
        cv_free(vol);
        return 1;
    }
    double *runs = calloc((size_t)repeats, sizeof(double));
    double *cpus = calloc((size_t)repeats, sizeof(double));
    if (!runs || !cpus) return 1;
    for (int64_t r = 0; r < repeats; r++) {
        double t = now_s(), c = cpu_s();
        if (cv_cutout_into(vol, (uint32_t)mip, lo, hi, buf, n) != CV_OK) {
            fprintf(stderr, "cutout_bench: cv_cutout_into: %s\n", cv_last_error());
            free(buf);
            free(runs);
            free(cpus);
            cv_free(vol);
            return 1;
        }
        runs[r] = now_s() - t;
        cpus[r] = cpu_s() - c;
    }
    long rss_peak = max_rss_kb();
    long hwm_peak = hwm_kb();
    uint64_t sum = checksum(buf, n);
    const char *dump = getenv("CUTOUT_BENCH_DUMP");
    if (dump && *dump) {
        FILE *f = fopen(dump, "wb");
        if (!f || fwrite(buf, 1, n, f) != n || fclose(f) != 0) {
            fprintf(stderr, "cutout_bench: cannot write %s\n", dump);
            return 1;
        }
    }

    printf("{\"url\":");
    json_str(url);
    printf(",\"mip\":%" PRId64 ",\"box\":[%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 "]",
           mip, lo[0], lo[1], lo[2], hi[0], hi[1], hi[2]);
    printf(",\"bytes\":%zu,\"open_s\":%.6f,\"runs_s\":[", n, open_s);
    for (int64_t r = 0; r < repeats; r++) printf("%s%.6f", r ? "," : "", runs[r]);
    printf("],\"cpu_s\":[");
    for (int64_t r = 0; r < repeats; r++) printf("%s%.6f", r ? "," : "", cpus[r]);
    printf("],\"rss_before_kb\":%ld,\"max_rss_kb\":%ld,\"hwm_before_kb\":%ld,\"hwm_kb\":%ld", rss_before, rss_peak,
           hwm_before, hwm_peak);
    printf(",\"checksum\":\"0x%016" PRIx64 "\",\"version\":", sum);
    json_str(cv_version());
    printf(",\"hugepages\":%s}\n", hugepages ? "true" : "false");
    free(buf);
    free(runs);
    free(cpus);
    cv_free(vol);
    return 0;
}
