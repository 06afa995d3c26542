/*
 * The C ABI exercised from C through include/cloudvolume.h.
 *
 * usage: test_capi <layer-url> <layer-with-missing-chunk-url> <missing-chunk-name> <absent-url>
 *
 * <layer-url> is a uint16 layer with 2 channels written by tests/support/layers.rs:
 * mip 0 offset (-3,5,10), size (50,40,20), chunk (16,16,8), resolution (4,4,40); mip 1 halves x
 * and y (offset (-2,2,10), size (26,21,20), resolution (8,8,40)). Voxel (x,y,z,c) of every mip
 * holds (uint16_t)(x*7 + y*131 + z*1031 + c*50021). The second layer is the same with mip 0's
 * chunk <missing-chunk-name> deleted. <absent-url> names no layer.
 *
 * Prints every failed check and exits 1 if there was any, 0 otherwise.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloudvolume.h"

static int failures = 0;
static int checks = 0;

#define CHECK(cond, ...)                                                         \
    do {                                                                         \
        checks++;                                                                \
        if (!(cond)) {                                                           \
            failures++;                                                          \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);      \
            fprintf(stderr, __VA_ARGS__);                                        \
            fprintf(stderr, " (last error: \"%s\")\n", cv_last_error());         \
        }                                                                        \
    } while (0)

/* A failing call: its status and a last error that is non-empty and contains `needle`. */
static void expect_err(int line, const char *what, cv_status st, cv_status want, const char *needle) {
    const char *err = cv_last_error();
    checks++;
    if (st != want) {
        failures++;
        fprintf(stderr, "FAIL line %d: %s: status %d, expected %d (last error: \"%s\")\n", line, what,
                (int)st, (int)want, err ? err : "(NULL)");
        return;
    }
    checks++;
    if (err == NULL || err[0] == '\0') {
        failures++;
        fprintf(stderr, "FAIL line %d: %s: status %d but empty last error\n", line, what, (int)st);
        return;
    }
    checks++;
    if (needle != NULL && strstr(err, needle) == NULL) {
        failures++;
        fprintf(stderr, "FAIL line %d: %s: last error \"%s\" does not contain \"%s\"\n", line, what, err,
                needle);
        return;
    }
    printf("ok   %-58s -> %d: %s\n", what, (int)st, err);
}
#define EXPECT_ERR(what, call, want, needle) expect_err(__LINE__, what, (call), want, needle)

static void expect_ok(int line, const char *what, cv_status st) {
    const char *err = cv_last_error();
    checks++;
    if (st != CV_OK) {
        failures++;
        fprintf(stderr, "FAIL line %d: %s: status %d (last error: \"%s\")\n", line, what, (int)st, err);
        return;
    }
    checks++;
    if (err == NULL || err[0] != '\0') {
        failures++;
        fprintf(stderr, "FAIL line %d: %s: succeeded but last error is \"%s\"\n", line, what,
                err ? err : "(NULL)");
    }
}
#define EXPECT_OK(what, call) expect_ok(__LINE__, what, (call))

static uint16_t voxel(int64_t x, int64_t y, int64_t z, int64_t c) {
    return (uint16_t)(uint64_t)(x * 7 + y * 131 + z * 1031 + c * 50021);
}

#define NCHAN 2
#define GUARD 64
#define GUARD_BYTE 0xA5

/* A buffer with GUARD bytes of GUARD_BYTE on both sides of `len` usable bytes. */
typedef struct {
    unsigned char *base;
    size_t len;
} guarded;

static guarded galloc(size_t len) {
    guarded g;
    g.len = len;
    g.base = malloc(len + 2 * GUARD);
    if (g.base == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    memset(g.base, GUARD_BYTE, len + 2 * GUARD);
    return g;
}

static void *gbuf(guarded *g) { return g->base + GUARD; }

static int guards_intact(const guarded *g) {
    size_t i;
    for (i = 0; i < GUARD; i++) {
        if (g->base[i] != GUARD_BYTE || g->base[GUARD + g->len + i] != GUARD_BYTE) return 0;
    }
    return 1;
}

static void gfree(guarded *g) { free(g->base); }

/* Read [lo, hi) at `mip` and check every voxel: inside [blo, bhi) the pattern (except inside the
 * optional `missing` box), elsewhere `background`. */
static void check_box(const cv_volume *v, uint32_t mip, const int64_t lo[3], const int64_t hi[3],
                      const int64_t blo[3], const int64_t bhi[3], const int64_t *mlo, const int64_t *mhi,
                      uint16_t background, const char *what) {
    size_t n = (size_t)((hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2]));
    size_t len = n * NCHAN * sizeof(uint16_t);
    size_t want_len = 0;
    guarded g = galloc(len);
    int64_t x, y, z, c;
    size_t i = 0, bad = 0;
    cv_status st;

    EXPECT_OK("cv_cutout_len", cv_cutout_len(v, lo, hi, &want_len));
    CHECK(want_len == len, "%s: cv_cutout_len %zu, expected %zu", what, want_len, len);
    st = cv_cutout_into(v, mip, lo, hi, gbuf(&g), len);
    expect_ok(__LINE__, what, st);
    if (st == CV_OK) {
        const unsigned char *b = gbuf(&g);
        for (c = 0; c < NCHAN; c++)
            for (z = lo[2]; z < hi[2]; z++)
                for (y = lo[1]; y < hi[1]; y++)
                    for (x = lo[0]; x < hi[0]; x++, i++) {
                        int in = x >= blo[0] && x < bhi[0] && y >= blo[1] && y < bhi[1] && z >= blo[2] &&
                                 z < bhi[2];
                        int miss = mlo != NULL && x >= mlo[0] && x < mhi[0] && y >= mlo[1] && y < mhi[1] &&
                                   z >= mlo[2] && z < mhi[2];
                        uint16_t want = (in && !miss) ? voxel(x, y, z, c) : background;
                        /* little-endian elements, whatever the host */
                        uint16_t got = (uint16_t)(b[2 * i] | (b[2 * i + 1] << 8));
                        if (got != want) {
                            if (bad < 5)
                                fprintf(stderr,
                                        "  %s: voxel (%" PRId64 ",%" PRId64 ",%" PRId64 ") c%" PRId64
                                        " = %u, expected %u\n",
                                        what, x, y, z, c, got, want);
                            bad++;
                        }
                    }
        CHECK(bad == 0, "%s: %zu of %zu values wrong", what, bad, n * NCHAN);
        if (bad == 0) printf("ok   %-58s (%zu voxels)\n", what, n);
    }
    CHECK(guards_intact(&g), "%s: bytes outside the buffer were touched", what);
    gfree(&g);
}

static const int64_t B0LO[3] = {-3, 5, 10}, B0HI[3] = {47, 45, 30};
static const int64_t B1LO[3] = {-2, 2, 10}, B1HI[3] = {24, 23, 30};

static void test_getters(const cv_volume *v) {
    int32_t dt = -1, enc = -1;
    uint32_t nc = 0, nm = 0, dm = 99;
    int64_t lo[3] = {0}, hi[3] = {0}, cs[3] = {0};
    double res[3] = {0};
    char *json = NULL;
    int d;

    EXPECT_OK("cv_data_type", cv_data_type(v, &dt));
    CHECK(dt == CV_DTYPE_UINT16, "data type %d", (int)dt);
    CHECK(cv_dtype_size(dt) == 2, "dtype size %zu", cv_dtype_size(dt));
    CHECK(strcmp(cv_dtype_name(dt), "uint16") == 0, "dtype name %s", cv_dtype_name(dt));
    CHECK(cv_dtype_size(CV_DTYPE_UINT8) == 1 && cv_dtype_size(CV_DTYPE_INT8) == 1, "1-byte sizes");
    CHECK(cv_dtype_size(CV_DTYPE_INT16) == 2, "int16 size");
    CHECK(cv_dtype_size(CV_DTYPE_UINT32) == 4 && cv_dtype_size(CV_DTYPE_INT32) == 4 &&
              cv_dtype_size(CV_DTYPE_FLOAT32) == 4,
          "4-byte sizes");
    CHECK(cv_dtype_size(CV_DTYPE_UINT64) == 8 && cv_dtype_size(CV_DTYPE_INT64) == 8 &&
              cv_dtype_size(CV_DTYPE_FLOAT64) == 8,
          "8-byte sizes");
    CHECK(strcmp(cv_dtype_name(CV_DTYPE_UINT8), "uint8") == 0, "uint8 name");
    CHECK(strcmp(cv_dtype_name(CV_DTYPE_INT8), "int8") == 0, "int8 name");
    CHECK(strcmp(cv_dtype_name(CV_DTYPE_INT16), "int16") == 0, "int16 name");
    CHECK(strcmp(cv_dtype_name(CV_DTYPE_UINT32), "uint32") == 0, "uint32 name");
    CHECK(strcmp(cv_dtype_name(CV_DTYPE_INT32), "int32") == 0, "int32 name");
    CHECK(strcmp(cv_dtype_name(CV_DTYPE_UINT64), "uint64") == 0, "uint64 name");
    CHECK(strcmp(cv_dtype_name(CV_DTYPE_INT64), "int64") == 0, "int64 name");
    CHECK(strcmp(cv_dtype_name(CV_DTYPE_FLOAT32), "float32") == 0, "float32 name");
    CHECK(strcmp(cv_dtype_name(CV_DTYPE_FLOAT64), "float64") == 0, "float64 name");
    CHECK(cv_dtype_size(0) == 0 && cv_dtype_size(11) == 0 && cv_dtype_size(-1) == 0, "unknown dtype size");
    CHECK(cv_dtype_name(0) != NULL && cv_dtype_name(0)[0] == '\0', "unknown dtype name");
    CHECK(cv_dtype_name(12345) != NULL && cv_dtype_name(12345)[0] == '\0', "unknown dtype name");

    EXPECT_OK("cv_num_channels", cv_num_channels(v, &nc));
    CHECK(nc == 2, "channels %u", nc);
    EXPECT_OK("cv_num_mips", cv_num_mips(v, &nm));
    CHECK(nm == 2, "mips %u", nm);
    EXPECT_OK("cv_default_mip", cv_default_mip(v, &dm));
    CHECK(dm == 0, "default mip %u", dm);

    EXPECT_OK("cv_bounds mip 0", cv_bounds(v, 0, lo, hi));
    for (d = 0; d < 3; d++)
        CHECK(lo[d] == B0LO[d] && hi[d] == B0HI[d], "mip 0 bounds axis %d: %" PRId64 "..%" PRId64, d, lo[d],
              hi[d]);
    EXPECT_OK("cv_bounds mip 1", cv_bounds(v, 1, lo, hi));
    for (d = 0; d < 3; d++)
        CHECK(lo[d] == B1LO[d] && hi[d] == B1HI[d], "mip 1 bounds axis %d: %" PRId64 "..%" PRId64, d, lo[d],
              hi[d]);

    EXPECT_OK("cv_chunk_size", cv_chunk_size(v, 0, cs));
    CHECK(cs[0] == 16 && cs[1] == 16 && cs[2] == 8, "chunk size %" PRId64 ",%" PRId64 ",%" PRId64, cs[0], cs[1],
          cs[2]);
    EXPECT_OK("cv_chunk_size mip 1", cv_chunk_size(v, 1, cs));
    CHECK(cs[0] == 16 && cs[1] == 16 && cs[2] == 8, "mip 1 chunk size");

    EXPECT_OK("cv_resolution", cv_resolution(v, 0, res));
    CHECK(res[0] == 4.0 && res[1] == 4.0 && res[2] == 40.0, "resolution %g,%g,%g", res[0], res[1], res[2]);
    EXPECT_OK("cv_resolution mip 1", cv_resolution(v, 1, res));
    CHECK(res[0] == 8.0 && res[1] == 8.0 && res[2] == 40.0, "mip 1 resolution %g,%g,%g", res[0], res[1],
          res[2]);

    EXPECT_OK("cv_encoding", cv_encoding(v, 0, &enc));
    CHECK(enc == CV_ENCODING_RAW, "encoding %d", (int)enc);

    {
        int64_t a[3] = {0, 10, 12}, b[3] = {5, 13, 20};
        size_t n = 0;
        EXPECT_OK("cv_cutout_len", cv_cutout_len(v, a, b, &n));
        CHECK(n == (size_t)5 * 3 * 8 * 2 * 2, "cutout len %zu", n);
    }

    EXPECT_OK("cv_info_json", cv_info_json(v, &json));
    CHECK(json != NULL, "info json is NULL");
    if (json != NULL) {
        CHECK(strstr(json, "\"scales\"") != NULL, "info json lacks scales: %s", json);
        CHECK(strstr(json, "\"uint16\"") != NULL, "info json lacks the data type: %s", json);
        CHECK(strstr(json, "extra_member") != NULL, "info json drops unknown members: %s", json);
        cv_string_free(json);
    }
    cv_string_free(NULL);

    CHECK(cv_version() != NULL && strcmp(cv_version(), CLOUDVOLUME_VERSION) == 0, "cv_version %s vs %s",
          cv_version(), CLOUDVOLUME_VERSION);
    {
        char want[64];
        snprintf(want, sizeof want, "%d.%d.%d", CLOUDVOLUME_VERSION_MAJOR, CLOUDVOLUME_VERSION_MINOR,
                 CLOUDVOLUME_VERSION_PATCH);
        CHECK(strcmp(cv_version(), want) == 0, "version %s vs macros %s", cv_version(), want);
    }
}

static void test_reads(const cv_volume *v) {
    /* The whole of mip 0, then boxes cut anywhere, then mip 1. */
    check_box(v, 0, B0LO, B0HI, B0LO, B0HI, NULL, NULL, 0, "read all of mip 0");
    {
        int64_t lo[3] = {0, 10, 12}, hi[3] = {5, 13, 20};
        check_box(v, 0, lo, hi, B0LO, B0HI, NULL, NULL, 0, "read a small box");
    }
    {
        int64_t lo[3] = {12, 20, 17}, hi[3] = {31, 38, 27};
        check_box(v, 0, lo, hi, B0LO, B0HI, NULL, NULL, 0, "read a box across chunk borders");
    }
    {
        int64_t lo[3] = {46, 44, 29}, hi[3] = {47, 45, 30};
        check_box(v, 0, lo, hi, B0LO, B0HI, NULL, NULL, 0, "read the last voxel");
    }
    {
        int64_t lo[3] = {-3, 5, 10}, hi[3] = {-2, 6, 11};
        check_box(v, 0, lo, hi, B0LO, B0HI, NULL, NULL, 0, "read the first voxel");
    }
    check_box(v, 1, B1LO, B1HI, B1LO, B1HI, NULL, NULL, 0, "read all of mip 1");
    {
        int64_t lo[3] = {3, 4, 11}, hi[3] = {20, 21, 19};
        check_box(v, 1, lo, hi, B1LO, B1HI, NULL, NULL, 0, "read a box of mip 1");
    }
}

static void test_null_arguments(const cv_volume *v) {
    int64_t lo[3] = {0, 10, 12}, hi[3] = {5, 13, 20};
    size_t len = (size_t)5 * 3 * 8 * 2 * 2;
    guarded g = galloc(len);
    cv_volume *out = (cv_volume *)&g; /* any non-NULL value: must be left alone on failure */
    int32_t i32;
    uint32_t u32;
    int64_t t3[3];
    double d3[3];
    size_t sz;
    char *s = (char *)&g;

    EXPECT_ERR("cv_open(NULL cloudpath)", cv_open(NULL, NULL, &out), CV_ERR_INVALID_ARGUMENT, "cloudpath");
    CHECK(out == (cv_volume *)&g, "cv_open wrote *out on failure");
    EXPECT_ERR("cv_open(NULL out)", cv_open("file:///nonexistent", NULL, NULL), CV_ERR_INVALID_ARGUMENT, "out");

    EXPECT_ERR("cv_cutout_into(NULL vol)", cv_cutout_into(NULL, 0, lo, hi, gbuf(&g), len),
               CV_ERR_INVALID_ARGUMENT, "vol");
    EXPECT_ERR("cv_cutout_into(NULL lo)", cv_cutout_into(v, 0, NULL, hi, gbuf(&g), len), CV_ERR_INVALID_ARGUMENT,
               "lo");
    EXPECT_ERR("cv_cutout_into(NULL hi)", cv_cutout_into(v, 0, lo, NULL, gbuf(&g), len), CV_ERR_INVALID_ARGUMENT,
               "hi");
    EXPECT_ERR("cv_cutout_into(NULL buf)", cv_cutout_into(v, 0, lo, hi, NULL, len), CV_ERR_INVALID_ARGUMENT,
               "buf");
    EXPECT_ERR("cv_cutout_into(NULL buf, 0 bytes)", cv_cutout_into(v, 0, lo, hi, NULL, 0),
               CV_ERR_INVALID_ARGUMENT, "buf");

    EXPECT_ERR("cv_data_type(NULL vol)", cv_data_type(NULL, &i32), CV_ERR_INVALID_ARGUMENT, "vol");
    EXPECT_ERR("cv_data_type(NULL out)", cv_data_type(v, NULL), CV_ERR_INVALID_ARGUMENT, "out");
    EXPECT_ERR("cv_num_channels(NULL vol)", cv_num_channels(NULL, &u32), CV_ERR_INVALID_ARGUMENT, "vol");
    EXPECT_ERR("cv_num_channels(NULL out)", cv_num_channels(v, NULL), CV_ERR_INVALID_ARGUMENT, "out");
    EXPECT_ERR("cv_num_mips(NULL vol)", cv_num_mips(NULL, &u32), CV_ERR_INVALID_ARGUMENT, "vol");
    EXPECT_ERR("cv_num_mips(NULL out)", cv_num_mips(v, NULL), CV_ERR_INVALID_ARGUMENT, "out");
    EXPECT_ERR("cv_default_mip(NULL vol)", cv_default_mip(NULL, &u32), CV_ERR_INVALID_ARGUMENT, "vol");
    EXPECT_ERR("cv_default_mip(NULL out)", cv_default_mip(v, NULL), CV_ERR_INVALID_ARGUMENT, "out");
    EXPECT_ERR("cv_bounds(NULL vol)", cv_bounds(NULL, 0, t3, t3), CV_ERR_INVALID_ARGUMENT, "vol");
    EXPECT_ERR("cv_bounds(NULL lo)", cv_bounds(v, 0, NULL, t3), CV_ERR_INVALID_ARGUMENT, "lo");
    EXPECT_ERR("cv_bounds(NULL hi)", cv_bounds(v, 0, t3, NULL), CV_ERR_INVALID_ARGUMENT, "hi");
    EXPECT_ERR("cv_chunk_size(NULL vol)", cv_chunk_size(NULL, 0, t3), CV_ERR_INVALID_ARGUMENT, "vol");
    EXPECT_ERR("cv_chunk_size(NULL out)", cv_chunk_size(v, 0, NULL), CV_ERR_INVALID_ARGUMENT, "out");
    EXPECT_ERR("cv_resolution(NULL vol)", cv_resolution(NULL, 0, d3), CV_ERR_INVALID_ARGUMENT, "vol");
    EXPECT_ERR("cv_resolution(NULL out)", cv_resolution(v, 0, NULL), CV_ERR_INVALID_ARGUMENT, "out");
    EXPECT_ERR("cv_encoding(NULL vol)", cv_encoding(NULL, 0, &i32), CV_ERR_INVALID_ARGUMENT, "vol");
    EXPECT_ERR("cv_encoding(NULL out)", cv_encoding(v, 0, NULL), CV_ERR_INVALID_ARGUMENT, "out");
    EXPECT_ERR("cv_cutout_len(NULL vol)", cv_cutout_len(NULL, lo, hi, &sz), CV_ERR_INVALID_ARGUMENT, "vol");
    EXPECT_ERR("cv_cutout_len(NULL lo)", cv_cutout_len(v, NULL, hi, &sz), CV_ERR_INVALID_ARGUMENT, "lo");
    EXPECT_ERR("cv_cutout_len(NULL hi)", cv_cutout_len(v, lo, NULL, &sz), CV_ERR_INVALID_ARGUMENT, "hi");
    EXPECT_ERR("cv_cutout_len(NULL out)", cv_cutout_len(v, lo, hi, NULL), CV_ERR_INVALID_ARGUMENT, "out");
    EXPECT_ERR("cv_info_json(NULL vol)", cv_info_json(NULL, &s), CV_ERR_INVALID_ARGUMENT, "vol");
    CHECK(s == (char *)&g, "cv_info_json wrote *out on failure");
    EXPECT_ERR("cv_info_json(NULL out)", cv_info_json(v, NULL), CV_ERR_INVALID_ARGUMENT, "out");

    cv_free(NULL);
    cv_string_free(NULL);
    CHECK(guards_intact(&g), "NULL-argument calls touched the buffer's guards");
    gfree(&g);
}

static void test_bad_boxes_and_lengths(const cv_volume *v) {
    int64_t lo[3] = {0, 10, 12}, hi[3] = {5, 13, 20};
    size_t len = (size_t)5 * 3 * 8 * 2 * 2;
    guarded g = galloc(len + 16);
    char want[64], got[64];
    size_t sz = 12345;

    /* Wrong buffer length: the message names the expected and the actual size. */
    snprintf(want, sizeof want, "%zu", len);
    snprintf(got, sizeof got, "%zu", len - 2);
    EXPECT_ERR("cv_cutout_into(short buf_len)", cv_cutout_into(v, 0, lo, hi, gbuf(&g), len - 2),
               CV_ERR_INVALID_ARGUMENT, want);
    CHECK(strstr(cv_last_error(), got) != NULL, "message lacks the actual size %s", got);
    snprintf(got, sizeof got, "%zu", len + 16);
    EXPECT_ERR("cv_cutout_into(long buf_len)", cv_cutout_into(v, 0, lo, hi, gbuf(&g), len + 16),
               CV_ERR_INVALID_ARGUMENT, want);
    CHECK(strstr(cv_last_error(), got) != NULL, "message lacks the actual size %s", got);
    EXPECT_ERR("cv_cutout_into(buf_len 0)", cv_cutout_into(v, 0, lo, hi, gbuf(&g), 0), CV_ERR_INVALID_ARGUMENT,
               want);

    /* Inverted and empty boxes. */
    {
        int64_t a[3] = {5, 10, 12}, b[3] = {0, 13, 20};
        EXPECT_ERR("cv_cutout_into(inverted box)", cv_cutout_into(v, 0, a, b, gbuf(&g), len),
                   CV_ERR_INVALID_ARGUMENT, "box");
        EXPECT_ERR("cv_cutout_len(inverted box)", cv_cutout_len(v, a, b, &sz), CV_ERR_INVALID_ARGUMENT, "box");
        CHECK(sz == 12345, "cv_cutout_len wrote its output on failure");
    }
    {
        int64_t a[3] = {0, 10, 12}, b[3] = {5, 10, 20};
        EXPECT_ERR("cv_cutout_into(empty box)", cv_cutout_into(v, 0, a, b, gbuf(&g), 0), CV_ERR_INVALID_ARGUMENT,
                   "box");
    }

    /* Outside the bounds while bounded. */
    {
        int64_t a[3] = {40, 10, 12}, b[3] = {50, 13, 20}; /* x past 47 */
        size_t l = (size_t)10 * 3 * 8 * 2 * 2;
        guarded g2 = galloc(l);
        EXPECT_ERR("cv_cutout_into(box past the bounds)", cv_cutout_into(v, 0, a, b, gbuf(&g2), l),
                   CV_ERR_OUT_OF_BOUNDS, "40,10,12");
        CHECK(guards_intact(&g2), "out-of-bounds read touched the guards");
        gfree(&g2);
    }
    {
        int64_t a[3] = {-10, 10, 12}, b[3] = {-5, 13, 20}; /* wholly before the bounds */
        EXPECT_ERR("cv_cutout_into(box before the bounds)", cv_cutout_into(v, 0, a, b, gbuf(&g), len),
                   CV_ERR_OUT_OF_BOUNDS, "bounds");
    }

    /* A mip that does not exist. */
    EXPECT_ERR("cv_cutout_into(mip 2)", cv_cutout_into(v, 2, lo, hi, gbuf(&g), len), CV_ERR_INVALID_ARGUMENT,
               "mip 2");
    EXPECT_ERR("cv_cutout_into(mip 4000000000)", cv_cutout_into(v, 4000000000u, lo, hi, gbuf(&g), len),
               CV_ERR_INVALID_ARGUMENT, "mip");
    {
        int64_t t3[3];
        double d3[3];
        int32_t e;
        EXPECT_ERR("cv_bounds(mip 7)", cv_bounds(v, 7, t3, t3), CV_ERR_INVALID_ARGUMENT, "mip 7");
        EXPECT_ERR("cv_chunk_size(mip 7)", cv_chunk_size(v, 7, t3), CV_ERR_INVALID_ARGUMENT, "mip 7");
        EXPECT_ERR("cv_resolution(mip 7)", cv_resolution(v, 7, d3), CV_ERR_INVALID_ARGUMENT, "mip 7");
        EXPECT_ERR("cv_encoding(mip 7)", cv_encoding(v, 7, &e), CV_ERR_INVALID_ARGUMENT, "mip 7");
    }

    /* The last error is "" again after a success. */
    EXPECT_OK("cv_cutout_into after failures", cv_cutout_into(v, 0, lo, hi, gbuf(&g), len));
    CHECK(cv_last_error()[0] == '\0', "last error not cleared");
    CHECK(guards_intact(&g), "bad boxes touched the guards");
    gfree(&g);
}

static void test_options(const char *url) {
    cv_volume *v = NULL;
    uint32_t m = 99;

    EXPECT_ERR("cv_open(options not JSON)", cv_open(url, "{bounded: false", &v), CV_ERR_INVALID_ARGUMENT,
               "JSON");
    CHECK(v == NULL, "handle written on failure");
    EXPECT_ERR("cv_open(options an array)", cv_open(url, "[1,2]", &v), CV_ERR_INVALID_ARGUMENT, "object");
    EXPECT_ERR("cv_open(unknown option)", cv_open(url, "{\"fill_mising\": true}", &v), CV_ERR_INVALID_ARGUMENT,
               "fill_mising");
    EXPECT_ERR("cv_open(bad option value)", cv_open(url, "{\"bounded\": \"yes\"}", &v), CV_ERR_INVALID_ARGUMENT,
               "bounded");
    EXPECT_ERR("cv_open(bad mip option)", cv_open(url, "{\"mip\": -1}", &v), CV_ERR_INVALID_ARGUMENT, "mip");
    CHECK(v == NULL, "handle written on failure");

    EXPECT_OK("cv_open(empty options)", cv_open(url, "{}", &v));
    cv_free(v);
    v = NULL;
    EXPECT_OK("cv_open(mip option)", cv_open(url, "{\"mip\": 1, \"parallel\": 2}", &v));
    if (v != NULL) {
        EXPECT_OK("cv_default_mip", cv_default_mip(v, &m));
        CHECK(m == 1, "default mip %u", m);
        cv_free(v);
    }
}

static void test_unbounded(const char *url) {
    cv_volume *v = NULL;
    EXPECT_OK("cv_open(bounded=false)", cv_open(url, "{\"bounded\": false, \"background_color\": 7}", &v));
    if (v == NULL) return;
    {
        int64_t lo[3] = {-8, 0, 5}, hi[3] = {4, 9, 14}; /* sticks out before the bounds */
        check_box(v, 0, lo, hi, B0LO, B0HI, NULL, NULL, 7, "unbounded read across the low corner");
    }
    {
        int64_t lo[3] = {40, 38, 25}, hi[3] = {52, 50, 35}; /* sticks out past the bounds */
        check_box(v, 0, lo, hi, B0LO, B0HI, NULL, NULL, 7, "unbounded read across the high corner");
    }
    {
        int64_t lo[3] = {100, 100, 100}, hi[3] = {104, 103, 102}; /* wholly outside */
        check_box(v, 0, lo, hi, B0LO, B0HI, NULL, NULL, 7, "unbounded read wholly outside");
    }
    {
        int64_t lo[3] = {-5, 0, 8}, hi[3] = {30, 25, 33};
        check_box(v, 1, lo, hi, B1LO, B1HI, NULL, NULL, 7, "unbounded read at mip 1");
    }
    cv_free(v);
}

static void test_missing(const char *url, const char *chunk, const char *absent) {
    cv_volume *v = NULL;
    /* The missing chunk is mip 0's first cell, [-3,13) x [5,21) x [10,18). */
    int64_t mlo[3] = {-3, 5, 10}, mhi[3] = {13, 21, 18};
    int64_t lo[3] = {-3, 5, 10}, hi[3] = {20, 30, 20};
    size_t len = (size_t)23 * 25 * 10 * 2 * 2;

    EXPECT_ERR("cv_open(absent layer)", cv_open(absent, NULL, &v), CV_ERR_NOT_FOUND, absent);
    CHECK(v == NULL, "handle written on failure");

    EXPECT_OK("cv_open(layer with a missing chunk)", cv_open(url, NULL, &v));
    if (v != NULL) {
        guarded g = galloc(len);
        int64_t a[3] = {20, 25, 20}, b[3] = {30, 30, 25};
        EXPECT_ERR("cv_cutout_into(missing chunk)", cv_cutout_into(v, 0, lo, hi, gbuf(&g), len), CV_ERR_NOT_FOUND,
                   chunk);
        CHECK(guards_intact(&g), "failed read touched the guards");
        gfree(&g);
        /* Boxes that avoid the missing chunk still read. */
        check_box(v, 0, a, b, B0LO, B0HI, NULL, NULL, 0, "read beside a missing chunk");
        cv_free(v);
        v = NULL;
    }
    EXPECT_OK("cv_open(fill_missing)",
              cv_open(url, "{\"fill_missing\": true, \"background_color\": 9}", &v));
    if (v != NULL) {
        check_box(v, 0, lo, hi, B0LO, B0HI, mlo, mhi, 9, "fill_missing read over a missing chunk");
        cv_free(v);
    }
}

int main(int argc, char **argv) {
    cv_volume *v = NULL;
    if (argc != 5) {
        fprintf(stderr, "usage: %s <layer-url> <missing-chunk-layer-url> <missing-chunk-name> <absent-url>\n",
                argv[0]);
        return 2;
    }
    printf("cloudvolume %s (header %s)\n", cv_version(), CLOUDVOLUME_VERSION);
    CHECK(cv_last_error() != NULL && cv_last_error()[0] == '\0', "last error before any call");

    EXPECT_OK("cv_open", cv_open(argv[1], NULL, &v));
    if (v == NULL) {
        fprintf(stderr, "cannot open %s; giving up\n", argv[1]);
        return 1;
    }
    test_getters(v);
    test_reads(v);
    test_null_arguments(v);
    test_bad_boxes_and_lengths(v);
    cv_free(v);

    test_options(argv[1]);
    test_unbounded(argv[1]);
    test_missing(argv[2], argv[3], argv[4]);

    /* precomputed:// prefix */
    {
        char url[4096];
        snprintf(url, sizeof url, "precomputed://%s", argv[1]);
        v = NULL;
        EXPECT_OK("cv_open(precomputed://...)", cv_open(url, NULL, &v));
        cv_free(v);
    }

    printf("%d checks, %d failures\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
