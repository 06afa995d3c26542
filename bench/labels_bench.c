/* labels_bench: time cv_unique over a layer's whole bounds at mip 0 from C.
 *
 *   labels_bench unique URL REPEATS [OPTIONS_JSON]
 *
 * Opens URL (cv_open with OPTIONS_JSON or NULL) and calls cv_unique on the bounds of mip 0
 * REPEATS times (labels and counts released after each run). Prints one JSON line:
 *   {"mode":"unique", "url":..., "n_labels":N, "voxels":V, "open_s":S, "runs_s":[...],
 *    "cpu_s":[...], "hwm_before_kb":K, "hwm_kb":K, "checksum":"0x...", "version":...}
 * voxels is the sum of the counts (the box's voxels); checksum is the sum mod 2^64 of the
 * labels, as the drivers compute it from the reference readers' unique labels.
 * Exit status: 0 on success, 1 on a library error (message on stderr), 2 on bad usage.
 *
 * Build: cc -O2 -Iinclude bench/labels_bench.c -LDIR -lcloudvolume -Wl,-rpath,DIR
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloudvolume.h"
#include "bench_util.h"

int main(int argc, char **argv) {
    if (argc < 4 || argc > 5 || strcmp(argv[1], "unique") != 0) {
        fprintf(stderr, "usage: labels_bench unique URL REPEATS [OPTIONS_JSON]\n");
        return 2;
    }
    const char *url = argv[2];
    int64_t repeats;
    if (!parse_i64(argv[3], &repeats) || repeats < 1) {
        fprintf(stderr, "labels_bench: REPEATS must be a positive integer\n");
        return 2;
    }
    const char *options = argc == 5 ? argv[4] : NULL;
    cv_volume *vol = NULL;
    double t0 = now_s();
    if (cv_open(url, options, &vol) != CV_OK) {
        fprintf(stderr, "labels_bench: cv_open(%s): %s\n", url, cv_last_error());
        return 1;
    }
    double open_s = now_s() - t0;
    int64_t lo[3], hi[3];
    if (cv_bounds(vol, 0, lo, hi) != CV_OK) {
        fprintf(stderr, "labels_bench: bounds: %s\n", cv_last_error());
        return 1;
    }
    long hwm_before = hwm_kb();
    double *runs = calloc((size_t)repeats, sizeof(double));
    double *cpus = calloc((size_t)repeats, sizeof(double));
    if (!runs || !cpus) return 1;
    size_t n = 0;
    uint64_t sum = 0, voxels = 0;
    for (int64_t r = 0; r < repeats; r++) {
        uint64_t *labels = NULL, *counts = NULL;
        double t = now_s(), c = cpu_s();
        if (cv_unique(vol, 0, lo, hi, &labels, &counts, &n) != CV_OK) {
            fprintf(stderr, "labels_bench: cv_unique: %s\n", cv_last_error());
            return 1;
        }
        runs[r] = now_s() - t;
        cpus[r] = cpu_s() - c;
        sum = 0;
        voxels = 0;
        for (size_t i = 0; i < n; i++) {
            sum += labels[i];
            voxels += counts[i];
        }
        cv_labels_free(labels, n);
        cv_labels_free(counts, n);
    }
    long hwm = hwm_kb();
    printf("{\"mode\":\"unique\",\"url\":");
    json_str(url);
    printf(",\"n_labels\":%zu,\"voxels\":%" PRIu64 ",\"open_s\":%.6f,\"runs_s\":[", n, voxels, open_s);
    for (int64_t r = 0; r < repeats; r++) printf("%s%.6f", r ? "," : "", runs[r]);
    printf("],\"cpu_s\":[");
    for (int64_t r = 0; r < repeats; r++) printf("%s%.6f", r ? "," : "", cpus[r]);
    printf("],\"hwm_before_kb\":%ld,\"hwm_kb\":%ld,\"checksum\":\"0x%016" PRIx64 "\",\"version\":", hwm_before, hwm, sum);
    json_str(cv_version());
    printf("}\n");
    free(runs);
    free(cpus);
    cv_free(vol);
    return 0;
}
