/* write_bench: time cv_write_from of a whole, chunk-aligned volume from C.
 *
 *   write_bench URL INFO_FILE SOURCE REPEATS [OPTIONS_JSON]
 *
 * Creates the layer at URL with the info JSON in INFO_FILE (cv_create with OPTIONS_JSON, which
 * should carry "overwrite": true when the layer may exist), loads SOURCE into one buffer (the
 * whole mip-0 volume in the layout cv_cutout_into returns: Fortran order, x fastest, then y,
 * z, channel; exactly cv_cutout_len bytes), then writes the whole volume (cv_bounds of mip 0)
 * with cv_write_from REPEATS times. SOURCE "-" generates the buffer instead (a byte pattern,
 * for smoke tests). Prints one JSON line:
 *   {"url":..., "bytes":B, "create_s":S, "runs_s":[...], "cpu_s":[...], "hwm_before_kb":K,
 *    "hwm_kb":K, "max_rss_kb":K, "checksum":"0x...", "version":...}
 * bytes is the size of the volume written (decoded); hwm_before_kb is VmHWM after the source is
 * loaded and the layer created, hwm_kb after the writes (this process image's own peak resident
 * set, KiB); max_rss_kb is getrusage's ru_maxrss (Linux carries it over from the parent across
 * exec). checksum is the sum mod 2^64 of the source read as little-endian uint64 words, as
 * cutout_bench.c computes it for its output, so a read-back can be compared with it.
 * Exit status: 0 on success, 1 on a library or I/O error (message on stderr), 2 on bad usage.
 *
 * Build: cc -O2 -Iinclude bench/write_bench.c -LDIR -lcloudvolume -Wl,-rpath,DIR
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
    fprintf(stderr, "usage: write_bench URL INFO_FILE SOURCE|- REPEATS [OPTIONS_JSON]\n");
    exit(2);
}

int main(int argc, char **argv) {
    if (argc != 5 && argc != 6) usage();
    const char *url = argv[1], *info_file = argv[2], *source = argv[3];
    int64_t repeats;
    if (!parse_i64(argv[4], &repeats) || repeats < 1) usage();
    const char *options = argc == 6 ? argv[5] : NULL;

    size_t info_len = 0;
    char *info = (char *)read_file(info_file, &info_len);
    if (!info) {
        fprintf(stderr, "write_bench: cannot read %s\n", info_file);
        return 1;
    }
    cv_volume *vol = NULL;
    double t0 = now_s();
    if (cv_create(url, info, options, &vol) != CV_OK) {
        fprintf(stderr, "write_bench: cv_create(%s): %s\n", url, cv_last_error());
        return 1;
    }
    double create_s = now_s() - t0;
    int64_t lo[3], hi[3];
    size_t n = 0;
    if (cv_bounds(vol, 0, lo, hi) != CV_OK || cv_cutout_len(vol, lo, hi, &n) != CV_OK) {
        fprintf(stderr, "write_bench: bounds: %s\n", cv_last_error());
        return 1;
    }
    unsigned char *buf;
    if (strcmp(source, "-") == 0) {
        buf = malloc(n ? n : 1);
        if (!buf) {
            fprintf(stderr, "write_bench: cannot allocate %zu bytes\n", n);
            return 1;
        }
        uint32_t s = 12345;
        for (size_t i = 0; i < n; i++) {
            s = s * 1103515245u + 12345u;
            buf[i] = (unsigned char)((i / 7) ^ (s >> 28));
        }
    } else {
        size_t len = 0;
        buf = read_file(source, &len);
        if (!buf) {
            fprintf(stderr, "write_bench: cannot read %s\n", source);
            return 1;
        }
        if (len != n) {
            fprintf(stderr, "write_bench: %s has %zu bytes; the volume needs %zu\n", source, len, n);
            return 1;
        }
    }
    uint64_t sum = checksum(buf, n);
    long hwm_before = hwm_kb();
    double *runs = calloc((size_t)repeats, sizeof(double));
    double *cpus = calloc((size_t)repeats, sizeof(double));
    if (!runs || !cpus) return 1;
    for (int64_t r = 0; r < repeats; r++) {
        double t = now_s(), c = cpu_s();
        if (cv_write_from(vol, 0, lo, hi, buf, n) != CV_OK) {
            fprintf(stderr, "write_bench: cv_write_from: %s\n", cv_last_error());
            return 1;
        }
        runs[r] = now_s() - t;
        cpus[r] = cpu_s() - c;
    }
    long hwm = hwm_kb(), rss = max_rss_kb();

    printf("{\"url\":");
    json_str(url);
    printf(",\"bytes\":%zu,\"create_s\":%.6f,\"runs_s\":[", n, create_s);
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
    free(info);
    cv_free(vol);
    return 0;
}
