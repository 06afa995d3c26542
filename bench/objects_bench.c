/* objects_bench: time cv_mesh_get_each / cv_skeleton_get_each from C (bench/run_objects.py).
 *
 *   objects_bench mesh|skeleton URL IDS_FILE REPEATS [OPTIONS_JSON]
 *
 * Opens URL (cv_open with OPTIONS_JSON, or NULL), reads the uint64 little-endian segment ids of
 * IDS_FILE, and REPEATS times fetches and decodes all of them at once: `mesh` is
 * cv_mesh_get_each(ids, lod 0, weld -1 (cloud-volume's default), no chunk_size, no missing),
 * `skeleton` is cv_skeleton_get_each(ids, no missing). Only that call is timed; the objects
 * are then read out (counts, checksums) and released before the next run. Prints one JSON line:
 *   {"kind":..., "n_ids":N, "open_s":S, "runs_s":[...], "cpu_s":[...], "bytes":B,
 *    "n_vertices":V, "n_faces":F (meshes) | "n_edges":E (skeletons), "vertex_sum":X,
 *    "checksum":"0x...", "parts":{...}, "hwm_before_kb":K, "hwm_kb":K, "max_rss_kb":K}
 * bytes: the decoded output of one run (vertices 12 B, faces 12 B / edges 8 B, attributes).
 * checksum: over the objects of one run, the sum modulo 2^64 of each object's arrays read as
 * little-endian uint64 words (bench_util.h's checksum, a short tail zero-padded, per array and
 * per object, so the order of the objects does not matter); parts has the same per array
 * (vertices, faces | edges, and each skeleton attribute by name). vertex_sum is the sum of every
 * vertex coordinate as double. Every run must give the same; a run that differs from the first
 * is an error. hwm_kb is VmHWM (this process's peak RSS); hwm_before_kb the same after cv_open.
 * With OBJECTS_BENCH_SYNC=1 the program prints "open" (after cv_open) and "run K" (after run K)
 * lines on stdout, each followed by waiting for one line on stdin, so the driver can read a
 * request counter between the runs.
 * Exit status: 0 on success, 1 on a library error (message on stderr), 2 on bad arguments.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "cloudvolume.h"

#define MAX_ATTRS 8

typedef struct {
    size_t n_vertices, n_faces, n_edges, bytes;
    double vertex_sum;
    uint64_t vsum, fsum, esum, asum[MAX_ATTRS];
    char attr_names[MAX_ATTRS][64];
    size_t n_attrs;
} tally;

static void usage(void) {
    fprintf(stderr, "usage: objects_bench mesh|skeleton URL IDS_FILE REPEATS [OPTIONS_JSON]\n");
    exit(2);
}

static void sync_point(int sync, const char *what, int64_t k) {
    if (!sync) return;
    if (k >= 0) printf("%s %" PRId64 "\n", what, k);
    else printf("%s\n", what);
    fflush(stdout);
    char line[64];
    if (!fgets(line, sizeof line, stdin)) exit(1);
}

static int grow(void **buf, size_t *cap, size_t need) {
    if (need <= *cap) return 1;
    void *p = realloc(*buf, need);
    if (!p) return 0;
    *buf = p;
    *cap = need;
    return 1;
}

static double fsum(const float *v, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += v[i];
    return s;
}

/* Read out and release the meshes of one run. */
static int tally_meshes(cv_mesh **out, size_t n, tally *t) {
    static void *buf = NULL;
    static size_t cap = 0;
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < n; i++) {
        size_t nv = 0, nf = 0;
        if (!out[i] || cv_mesh_counts(out[i], &nv, &nf) != CV_OK) return 0;
        size_t need = 12 * (nv > nf ? nv : nf);
        if (!grow(&buf, &cap, need ? need : 1)) return 0;
        if (cv_mesh_vertices_into(out[i], buf, 12 * nv) != CV_OK) return 0;
        t->vsum += checksum(buf, 12 * nv);
        t->vertex_sum += fsum(buf, 3 * nv);
        if (cv_mesh_faces_into(out[i], buf, 12 * nf) != CV_OK) return 0;
        t->fsum += checksum(buf, 12 * nf);
        t->n_vertices += nv;
        t->n_faces += nf;
        t->bytes += 12 * nv + 12 * nf;
        cv_mesh_free(out[i]);
        out[i] = NULL;
    }
    return 1;
}

/* Read out and release the skeletons of one run. */
static int tally_skeletons(cv_skeleton **out, size_t n, tally *t) {
    static void *buf = NULL;
    static size_t cap = 0;
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < n; i++) {
        size_t nv = 0, ne = 0, na = 0;
        if (!out[i] || cv_skeleton_counts(out[i], &nv, &ne, &na) != CV_OK) return 0;
        if (na > MAX_ATTRS) {
            fprintf(stderr, "objects_bench: %zu attributes, at most %d handled\n", na, MAX_ATTRS);
            return 0;
        }
        size_t need = 12 * nv > 8 * ne ? 12 * nv : 8 * ne;
        if (!grow(&buf, &cap, need ? need : 1)) return 0;
        if (cv_skeleton_vertices_into(out[i], buf, 12 * nv) != CV_OK) return 0;
        t->vsum += checksum(buf, 12 * nv);
        t->vertex_sum += fsum(buf, 3 * nv);
        if (cv_skeleton_edges_into(out[i], buf, 8 * ne) != CV_OK) return 0;
        t->esum += checksum(buf, 8 * ne);
        t->n_vertices += nv;
        t->n_edges += ne;
        t->bytes += 12 * nv + 8 * ne;
        t->n_attrs = na;
        for (size_t a = 0; a < na; a++) {
            const char *name = NULL;
            int32_t dtype = 0;
            uint32_t comps = 0;
            if (cv_skeleton_attribute(out[i], a, &name, &dtype, &comps) != CV_OK) return 0;
            size_t len = nv * comps * cv_dtype_size(dtype);
            if (!grow(&buf, &cap, len ? len : 1)) return 0;
            if (cv_skeleton_attribute_into(out[i], a, buf, len) != CV_OK) return 0;
            t->asum[a] += checksum(buf, len);
            t->bytes += len;
            snprintf(t->attr_names[a], sizeof t->attr_names[a], "%s", name);
        }
        cv_skeleton_free(out[i]);
        out[i] = NULL;
    }
    return 1;
}

static uint64_t total(const tally *t) {
    uint64_t s = t->vsum + t->fsum + t->esum;
    for (size_t a = 0; a < t->n_attrs; a++) s += t->asum[a];
    return s;
}

int main(int argc, char **argv) {
    if (argc != 5 && argc != 6) usage();
    int meshes;
    if (strcmp(argv[1], "mesh") == 0) meshes = 1;
    else if (strcmp(argv[1], "skeleton") == 0) meshes = 0;
    else usage();
    const char *url = argv[2];
    int64_t repeats;
    if (!parse_i64(argv[4], &repeats) || repeats < 1) usage();
    const char *options = argc == 6 ? argv[5] : NULL;
    const char *s = getenv("OBJECTS_BENCH_SYNC");
    int sync = s && *s && strcmp(s, "0") != 0;

    size_t len = 0;
    uint64_t *ids = (uint64_t *)read_file(argv[3], &len);
    if (!ids || len == 0 || len % 8 != 0) {
        fprintf(stderr, "objects_bench: cannot read ids from %s\n", argv[3]);
        return 2;
    }
    size_t n = len / 8;

    cv_volume *vol = NULL;
    double t0 = now_s();
    if (cv_open(url, options, &vol) != CV_OK) {
        fprintf(stderr, "objects_bench: cv_open(%s): %s\n", url, cv_last_error());
        return 1;
    }
    double open_s = now_s() - t0;
    long hwm_before = hwm_kb();
    sync_point(sync, "open", -1);

    cv_mesh **mout = meshes ? calloc(n, sizeof(cv_mesh *)) : NULL;
    cv_skeleton **sout = meshes ? NULL : calloc(n, sizeof(cv_skeleton *));
    double *runs = calloc((size_t)repeats, sizeof(double));
    double *cpus = calloc((size_t)repeats, sizeof(double));
    if ((meshes ? (void *)mout : (void *)sout) == NULL || !runs || !cpus) return 1;
    tally first, t;
    memset(&first, 0, sizeof first);
    for (int64_t r = 0; r < repeats; r++) {
        double w = now_s(), c = cpu_s();
        cv_status st = meshes ? cv_mesh_get_each(vol, ids, n, 0, -1, NULL, 0, mout)
                              : cv_skeleton_get_each(vol, ids, n, 0, sout);
        runs[r] = now_s() - w;
        cpus[r] = cpu_s() - c;
        if (st != CV_OK) {
            fprintf(stderr, "objects_bench: %s get_each: %s\n", argv[1], cv_last_error());
            return 1;
        }
        int ok = meshes ? tally_meshes(mout, n, &t) : tally_skeletons(sout, n, &t);
        if (!ok) {
            fprintf(stderr, "objects_bench: reading out run %" PRId64 ": %s\n", r + 1, cv_last_error());
            return 1;
        }
        if (r == 0) {
            first = t;
        } else if (total(&t) != total(&first) || t.n_vertices != first.n_vertices) {
            fprintf(stderr, "objects_bench: run %" PRId64 " returned other objects than run 1\n", r + 1);
            return 1;
        }
        sync_point(sync, "run", r + 1);
    }
    long hwm = hwm_kb();

    printf("{\"kind\":\"%s\",\"url\":", argv[1]);
    json_str(url);
    printf(",\"n_ids\":%zu,\"open_s\":%.6f,\"runs_s\":[", n, open_s);
    for (int64_t r = 0; r < repeats; r++) printf("%s%.6f", r ? "," : "", runs[r]);
    printf("],\"cpu_s\":[");
    for (int64_t r = 0; r < repeats; r++) printf("%s%.6f", r ? "," : "", cpus[r]);
    printf("],\"bytes\":%zu,\"n_vertices\":%zu", first.bytes, first.n_vertices);
    if (meshes) printf(",\"n_faces\":%zu", first.n_faces);
    else printf(",\"n_edges\":%zu", first.n_edges);
    printf(",\"vertex_sum\":%.17g,\"checksum\":\"0x%016" PRIx64 "\",\"parts\":{\"vertices\":\"0x%016" PRIx64 "\"",
           first.vertex_sum, total(&first), first.vsum);
    if (meshes) printf(",\"faces\":\"0x%016" PRIx64 "\"", first.fsum);
    else printf(",\"edges\":\"0x%016" PRIx64 "\"", first.esum);
    for (size_t a = 0; a < first.n_attrs; a++) {
        printf(",");
        json_str(first.attr_names[a]);
        printf(":\"0x%016" PRIx64 "\"", first.asum[a]);
    }
    printf("},\"hwm_before_kb\":%ld,\"hwm_kb\":%ld,\"max_rss_kb\":%ld,\"version\":", hwm_before, hwm, max_rss_kb());
    json_str(cv_version());
    printf("}\n");
    free(mout);
    free(sout);
    free(runs);
    free(cpus);
    free(ids);
    cv_free(vol);
    return 0;
}
