/* points_bench: time cv_scattered_points (and whole-volume cv_cutout_into) from C.
 *
 *   points_bench points URL REPEATS POINTS_FILE [OPTIONS_JSON]
 *   points_bench twice  URL 2       POINTS_FILE [OPTIONS_JSON]
 *   points_bench cutout URL REPEATS [- [OPTIONS_JSON]]
 *
 * points: opens URL (cv_open with OPTIONS_JSON or NULL) and reads the points of POINTS_FILE
 *   (little-endian int64 x,y,z triples, absolute voxel coordinates at mip 0) with
 *   cv_scattered_points REPEATS times into one buffer allocated once.
 * twice:  the same, but after the first run it prints the line {"phase":"warm"} on stdout,
 *   flushes, and waits for one line on stdin before the second run: a driver can read the
 *   request counters of a proxy in between (the second run's requests are the warm ones).
 * cutout: reads the whole volume at mip 0 (cv_bounds) with cv_cutout_into REPEATS times, as
 *   bench/cutout_bench.c does.
 *
 * Prints one JSON line:
 *   {"mode":..., "url":..., "n_points":N, "bytes":B, "open_s":S, "runs_s":[...], "cpu_s":[...],
 *    "hwm_before_kb":K, "hwm_kb":K, "max_rss_kb":K, "checksum":"0x...", "version":...}
 * bytes is the output size (n_points x channels x element size, or the cutout size);
 * hwm_kb is VmHWM from /proc/self/status (this process image's own peak resident set, KiB);
 * max_rss_kb is getrusage's ru_maxrss (which Linux carries over from the parent across exec).
 * checksum is the sum mod 2^64 of the output read as little-endian uint64 words (a short tail
 * zero-padded), as cutout_bench.c computes it.
 * With POINTS_BENCH_DUMP=PATH the output of the last run is written to PATH (not timed).
 * Exit status: 0 on success, 1 on a library or I/O error (message on stderr), 2 on bad usage.
 *
 * Build: cc -O2 -Iinclude bench/points_bench.c -LDIR -lcloudvolume -Wl,-rpath,DIR
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cloudvolume.h"
#include "bench_util.h"

static void usage(void) {
    fprintf(stderr,
            "usage: points_bench points|twice URL REPEATS POINTS_FILE [OPTIONS_JSON]\n"
            "       points_bench cutout URL REPEATS [- [OPTIONS_JSON]]\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc < 4 || argc > 6) usage();
    const char *mode = argv[1];
    int points = strcmp(mode, "points") == 0, twice = strcmp(mode, "twice") == 0;
    int cutout = strcmp(mode, "cutout") == 0;
    if (!points && !twice && !cutout) usage();
    const char *url = argv[2];
    int64_t repeats;
    if (!parse_i64(argv[3], &repeats) || repeats < 1) usage();
    if (twice) repeats = 2;
    const char *pfile = argc >= 5 ? argv[4] : "-";
    const char *options = argc == 6 ? argv[5] : NULL;
    if ((points || twice) && strcmp(pfile, "-") == 0) usage();

    /* Points are loaded before cv_open so that their memory is in hwm_before_kb. */
    int64_t *xyz = NULL;
    size_t n_points = 0;
    if (!cutout) {
        size_t len = 0;
        xyz = (int64_t *)read_file(pfile, &len);
        if (!xyz || len % 24 != 0 || len == 0) {
            fprintf(stderr, "points_bench: cannot read int64 x,y,z triples from %s\n", pfile);
            return 1;
        }
        n_points = len / 24;
    }

    cv_volume *vol = NULL;
    double t0 = now_s();
    if (cv_open(url, options, &vol) != CV_OK) {
        fprintf(stderr, "points_bench: cv_open(%s): %s\n", url, cv_last_error());
        return 1;
    }
    double open_s = now_s() - t0;

    size_t n = 0;
    int64_t lo[3], hi[3];
    if (cutout) {
        if (cv_bounds(vol, 0, lo, hi) != CV_OK || cv_cutout_len(vol, lo, hi, &n) != CV_OK) {
            fprintf(stderr, "points_bench: bounds: %s\n", cv_last_error());
            return 1;
        }
    } else {
        int32_t dtype = 0;
        uint32_t nc = 0;
        if (cv_data_type(vol, &dtype) != CV_OK || cv_num_channels(vol, &nc) != CV_OK) {
            fprintf(stderr, "points_bench: %s\n", cv_last_error());
            return 1;
        }
        n = n_points * nc * cv_dtype_size(dtype);
    }
    long hwm_before = hwm_kb();
    unsigned char *buf = malloc(n ? n : 1);
    double *runs = calloc((size_t)repeats, sizeof(double));
    double *cpus = calloc((size_t)repeats, sizeof(double));
    if (!buf || !runs || !cpus) {
        fprintf(stderr, "points_bench: cannot allocate %zu bytes\n", n);
        return 1;
    }
    for (int64_t r = 0; r < repeats; r++) {
        if (twice && r == 1) {
            printf("{\"phase\":\"warm\"}\n");
            fflush(stdout);
            char line[64];
            if (!fgets(line, sizeof line, stdin)) { /* end of stdin: go on */
            }
        }
        double t = now_s(), c = cpu_s();
        cv_status st = cutout ? cv_cutout_into(vol, 0, lo, hi, buf, n)
                              : cv_scattered_points(vol, 0, n_points, xyz, buf, n);
        if (st != CV_OK) {
            fprintf(stderr, "points_bench: %s: %s\n", cutout ? "cv_cutout_into" : "cv_scattered_points",
                    cv_last_error());
            return 1;
        }
        runs[r] = now_s() - t;
        cpus[r] = cpu_s() - c;
    }
    long hwm = hwm_kb(), rss = max_rss_kb();
    uint64_t sum = checksum(buf, n);
    const char *dump = getenv("POINTS_BENCH_DUMP");
    if (dump && *dump) {
        FILE *f = fopen(dump, "wb");
        if (!f || fwrite(buf, 1, n, f) != n || fclose(f) != 0) {
            fprintf(stderr, "points_bench: cannot write %s\n", dump);
            return 1;
        }
    }

    printf("{\"mode\":");
    json_str(mode);
    printf(",\"url\":");
    json_str(url);
    printf(",\"n_points\":%zu,\"bytes\":%zu,\"open_s\":%.6f,\"runs_s\":[", n_points, n, open_s);
    for (int64_t r = 0; r < repeats; r++) printf("%s%.6f", r ? "," : "", runs[r]);
    printf("],\"cpu_s\":[");
    for (int64_t r = 0; r < repeats; r++) printf("%s%.6f", r ? "," : "", cpus[r]);
    printf("],\"hwm_before_kb\":%ld,\"hwm_kb\":%ld,\"max_rss_kb\":%ld,\"checksum\":\"0x%016" PRIx64 "\",\"version\":",
           hwm_before, hwm, rss, sum);
    json_str(cv_version());
    printf("}\n");
    free(buf);
    free(runs);
    free(cpus);
    free(xyz);
    cv_free(vol);
    return 0;
}
