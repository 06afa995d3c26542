/*
 * cloudvolume_mex: the one MEX file behind CloudVolume.m (MATLAB and GNU Octave), a dispatcher
 * over the C ABI of include/cloudvolume.h.
 *
 *     out = cloudvolume_mex(command, args...)
 *
 * Handles: `cv_volume *` pointers never reach MATLAB. "open" and "create" keep the pointer in a
 * registry here and return a uint64 id (1, 2, 3, ... never reused in a session); every other
 * command looks the id up, so a stale, forged or freed id is the error cloudvolume:invalidHandle,
 * never a crash. "free" of an id that is not live is a no-op (a second delete is harmless).
 * While any handle lives the MEX file is locked (mexLock), so `clear mex` / `clear functions`
 * cannot unload code that live handles and the library's threads still use; the last "free"
 * unlocks it. mexAtExit frees what is left when MATLAB or Octave exits.
 *
 * Errors: a failing library call raises `cloudvolume:<reason>` with the library's message
 * (cv_last_error); argument errors found here raise cloudvolume:invalidArgument.
 *
 *   status                    identifier
 *   CV_ERR_INVALID_ARGUMENT   cloudvolume:invalidArgument
 *   CV_ERR_OUT_OF_BOUNDS      cloudvolume:outOfBounds
 *   CV_ERR_NOT_FOUND          cloudvolume:notFound
 *   CV_ERR_IO                 cloudvolume:io
 *   CV_ERR_AUTH               cloudvolume:auth
 *   CV_ERR_DECODE             cloudvolume:decode
 *   CV_ERR_UNSUPPORTED        cloudvolume:unsupported
 *   CV_ERR_INTERNAL           cloudvolume:internal
 *   (an id that is not live)  cloudvolume:invalidHandle
 *
 * Boxes cross as half-open [lo, hi) in absolute voxel coordinates (the C ABI's convention);
 * CloudVolume.m turns MATLAB's inclusive ranges into them. Arrays are the layer's class
 * (uint8 ... uint64, int8 ... int64, single, double), x-y-z(-channel), column-major: the
 * library decodes straight into the MATLAB array and encodes straight from it.
 *
 * Commands (ids are uint64 scalars; mip a scalar >= 0; lo, hi, factor, chunk 3 integers):
 *   version                               -> char
 *   open      path, options_json          -> id
 *   create    path, info_json, options    -> id
 *   free      id                          -> true if it was live, false otherwise
 *   live                                  -> number of live handles (double)
 *   locked                                -> whether this MEX file is locked (logical)
 *   meta      id                          -> struct (data_type, num_channels, num_mips,
 *                                            default_mip, and per mip (rows) voxel_offset,
 *                                            size, chunk_size, resolution, encoding)
 *   info      id                          -> char (the info JSON)
 *   cutout    id, mip, lo, hi             -> array (hi-lo) x channels
 *   write     id, mip, lo, A              -> nothing; the box is [lo, lo + size(A)(1:3))
 *   points    id, mip, xyz (3 x n)        -> array channels x n
 *   exists    id, mip, lo, hi             -> logical column, one per chunk (x fastest)
 *   delete_chunks id, mip, lo, hi         -> nothing
 *   add_scale id, factor, chunk or []     -> new mip (double)
 *   new_info  layer_type, data_type, encoding, num_channels, resolution, voxel_offset,
 *             size, chunk_size            -> char (info JSON)
 *   file_exists path, options_json, key   -> logical
 *   unique    id, mip, lo, hi             -> n x 2 uint64 (labels, counts)
 *   label_mask id, mip, lo, hi, labels    -> logical array of the box
 *   point_box id, mip, pt, size, coord_resolution or [] -> 2 x 3 double (lo; hi)
 *   renumber  id, mip, lo, hi             -> struct (data, labels)
 *   download_files id, mip, lo, hi, decompress -> struct array (name, data)
 *
 * Aligned image + segmentation cutouts (ImageryClient's), split masks and overlays:
 *   aligned_grid   image_id, seg_id, lo, hi, resolution or [], image_mip, seg_mip,
 *                  root_ids ('all' or numeric ids), scale_to_bounds
 *                                         -> struct (lo, hi: 1x3 double, half-open;
 *                                            resolution 1x3; image_mip, segmentation_mip)
 *                  (mips < 0: the layer's lowest mip not keyed "placeholder")
 *   aligned_cutout (the same arguments)   -> struct (image: x-y-z(-channel) of the image
 *                                            layer's class, segmentation: x-y-z uint64,
 *                                            grid: as aligned_grid's)
 *   split_masks    seg (uint64), ids (uint64) -> logical numel(seg) x numel(ids)
 *   segment_color  ids (numeric)           -> numel(ids) x 3 uint8
 *   overlay_rgb    grey (w x h uint8), seg (w x h uint64), alpha, outline -> w x h x 3 uint8
 *   overlay_png    (the same arguments)   -> uint8 column (an RGB PNG file)
 *
 * Services (src/ffi/services.rs):
 *   dvid_create_repo server, alias, description, options_json or []
 *                                         -> char (the new repo's root UUID)
 *
 * Meshes and skeletons (src/ffi/objects.rs; segid a non-negative integer scalar, ids a
 * non-empty vector of them, uint64 beyond 2^53; vertex rows are 1-based here, 0-based in the
 * C ABI; the library's mesh and skeleton objects never reach MATLAB):
 *   mesh_get  id, ids, lod, weld, chunk_size or [], allow_missing
 *                                         -> struct (vertices: n x 3 single, faces: m x 3
 *                                            double, 1-based): the ids' meshes as one
 *                                            (cv_mesh_get); lod -1 the coarsest; weld -1
 *                                            cloud-volume's default, 0 or 1; allow_missing 0/1
 *   mesh_get_each (mesh_get's arguments)  -> 1 x k struct array (id: uint64, vertices, faces):
 *                                            each id's mesh on its own, in the order given
 *                                            (cv_mesh_get_each); with allow_missing 1 the ids
 *                                            without a mesh are left out
 *   mesh_save (mesh_get's arguments), path -> nothing (.obj, .ply or .stl by the extension)
 *   mesh_lods id, segid                   -> double (levels of detail; 1 for legacy meshes)
 *   mesh_put  id, segid, vertices (n x 3 single), faces (m x 3, 1-based) -> nothing
 *   mesh_info id                          -> char (the mesh info JSON)
 *   skeleton_get id, segid                -> struct (vertices n x 3 single, edges e x 2 double
 *                                            1-based, names: 1 x k cell, values: 1 x k cell of
 *                                            n x components arrays of each attribute's class)
 *   skeleton_get_each id, ids, allow_missing -> 1 x k struct array (id: uint64, then
 *                                            skeleton_get's fields), in the order given
 *                                            (cv_skeleton_get_each); missing ids left out
 *                                            when allow_missing is 1
 *   skeleton_save id, segid, path         -> nothing (SWC)
 *   skeleton_put id, segid, vertices, edges (e x 2, 1-based), values ({} or one array per
 *                attribute of the info, in its order) -> nothing (vertices written as given)
 *   skeleton_info id                      -> char (the skeleton info JSON)
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mex.h"
#include "cloudvolume.h"

/* ---------------------------------------------------------------------------------------- */
/* Errors. */

static char msgbuf[4096];

static void fail_id(const char *id, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msgbuf, sizeof msgbuf, fmt, ap);
    va_end(ap);
    mexErrMsgIdAndTxt(id, "%s", msgbuf);
}

#define fail_arg(...) fail_id("cloudvolume:invalidArgument", __VA_ARGS__)

static const char *status_id(cv_status st) {
    switch (st) {
    case CV_ERR_INVALID_ARGUMENT: return "cloudvolume:invalidArgument";
    case CV_ERR_OUT_OF_BOUNDS: return "cloudvolume:outOfBounds";
    case CV_ERR_NOT_FOUND: return "cloudvolume:notFound";
    case CV_ERR_IO: return "cloudvolume:io";
    case CV_ERR_AUTH: return "cloudvolume:auth";
    case CV_ERR_DECODE: return "cloudvolume:decode";
    case CV_ERR_UNSUPPORTED: return "cloudvolume:unsupported";
    case CV_ERR_INTERNAL: return "cloudvolume:internal";
    default: return "cloudvolume:unknown";
    }
}

/* Raise the error of a failed library call; the message is copied first (cv_last_error is
 * only valid until the next cv_* call). */
static void fail_status(cv_status st) {
    const char *e = cv_last_error();
    if (e == NULL || e[0] == '\0') e = "the library failed without a message";
    snprintf(msgbuf, sizeof msgbuf, "%s", e);
    if (st != CV_ERR_INVALID_ARGUMENT && st != CV_ERR_OUT_OF_BOUNDS && st != CV_ERR_NOT_FOUND &&
        st != CV_ERR_IO && st != CV_ERR_AUTH && st != CV_ERR_DECODE && st != CV_ERR_UNSUPPORTED &&
        st != CV_ERR_INTERNAL) {
        size_t n = strlen(msgbuf);
        snprintf(msgbuf + n, sizeof msgbuf - n, " (unknown status %d)", (int)st);
    }
    mexErrMsgIdAndTxt(status_id(st), "%s", msgbuf);
}

static void check(cv_status st) {
    if (st != CV_OK) fail_status(st);
}

/* ---------------------------------------------------------------------------------------- */
/* The handle registry. */

typedef struct {
    uint64_t id;
    cv_volume *vol;
} entry;

static entry *reg = NULL;
static size_t reg_len = 0, reg_cap = 0;
static uint64_t next_id = 1;
static int is_locked = 0;
static int exit_hook = 0;

/* The meshes and skeletons the current command holds: calloc'ed arrays of the library's
 * pointers (NULL entries allowed). An error raised while they are held (a failed call, an
 * allocation refused, a bad argument) leaves the command through MATLAB's error unwinding, so
 * whatever is still held then is released at the start of the next command, or when the MEX
 * file is unloaded; a command that completes releases them itself. */
static cv_mesh **held_meshes = NULL;
static size_t n_held_meshes = 0;
static cv_skeleton **held_skeletons = NULL;
static size_t n_held_skeletons = 0;

static void release_held(void) {
    size_t i;
    for (i = 0; i < n_held_meshes; i++) cv_mesh_free(held_meshes[i]);
    free(held_meshes);
    held_meshes = NULL;
    n_held_meshes = 0;
    for (i = 0; i < n_held_skeletons; i++) cv_skeleton_free(held_skeletons[i]);
    free(held_skeletons);
    held_skeletons = NULL;
    n_held_skeletons = 0;
}

static void free_all(void) {
    size_t i;
    release_held();
    for (i = 0; i < reg_len; i++) cv_free(reg[i].vol);
    free(reg);
    reg = NULL;
    reg_len = reg_cap = 0;
    is_locked = 0; /* MATLAB/Octave are unloading us: nothing to unlock */
}

static void reserve_one(void) {
    if (!exit_hook) {
        mexAtExit(free_all);
        exit_hook = 1;
    }
    if (reg_len == reg_cap) {
        size_t cap = reg_cap ? 2 * reg_cap : 16;
        entry *p = (entry *)realloc(reg, cap * sizeof *p);
        if (p == NULL) fail_id("cloudvolume:outOfMemory", "out of memory for the handle registry");
        reg = p;
        reg_cap = cap;
    }
}

/* Registers a handle; reserve_one() must have run before the handle was created. */
static uint64_t add_handle(cv_volume *v) {
    uint64_t id = next_id++;
    reg[reg_len].id = id;
    reg[reg_len].vol = v;
    reg_len++;
    if (!is_locked) {
        mexLock();
        is_locked = 1;
    }
    return id;
}

/* The id of an mxArray: a real numeric scalar holding a positive integer. */
static uint64_t id_of(const mxArray *a) {
    double d;
    if (!mxIsNumeric(a) || mxIsComplex(a) || mxIsSparse(a) || mxGetNumberOfElements(a) != 1)
        fail_id("cloudvolume:invalidHandle", "a volume id must be a numeric scalar");
    if (mxGetClassID(a) == mxUINT64_CLASS) return *(const uint64_t *)mxGetData(a);
    d = mxGetScalar(a);
    if (!(d >= 1 && d < 18446744073709551616.0) || d != floor(d))
        fail_id("cloudvolume:invalidHandle", "a volume id must be a positive integer");
    return (uint64_t)d;
}

static size_t find_id(uint64_t id) {
    size_t i;
    for (i = 0; i < reg_len; i++)
        if (reg[i].id == id) return i;
    return (size_t)-1;
}

static cv_volume *get_vol(const mxArray *a) {
    uint64_t id = id_of(a);
    size_t i = find_id(id);
    if (i == (size_t)-1)
        fail_id("cloudvolume:invalidHandle",
                "no open volume has id %llu (it was deleted, or comes from another session)",
                (unsigned long long)id);
    return reg[i].vol;
}

/* ---------------------------------------------------------------------------------------- */
/* Arguments. */

static void need(int nrhs, int n, const char *usage) {
    if (nrhs != n) fail_arg("wrong number of arguments; usage: %s", usage);
}

/* A char row as a C string (mxMalloc'ed; freed by MATLAB on return or error). */
static char *get_string(const mxArray *a, const char *what) {
    char *s;
    if (!mxIsChar(a) || (mxGetM(a) > 1)) fail_arg("%s must be a character vector", what);
#ifdef HAVE_OCTAVE
    s = mxArrayToString(a); /* Octave's char arrays hold UTF-8 bytes */
#else
    s = mxArrayToUTF8String(a);
#endif
    if (s == NULL) fail_arg("%s could not be converted to a string", what);
    return s;
}

/* An optional string: [] gives NULL. */
static char *get_opt_string(const mxArray *a, const char *what) {
    if (mxIsEmpty(a) && !mxIsChar(a)) return NULL;
    return get_string(a, what);
}

/* Element i of a real numeric array as an int64; false when it is not an integer in range. */
static int elem_int64(const mxArray *a, size_t i, int64_t *out) {
    const void *p = mxGetData(a);
    double d;
    switch (mxGetClassID(a)) {
    case mxINT8_CLASS: *out = ((const int8_t *)p)[i]; return 1;
    case mxUINT8_CLASS: *out = ((const uint8_t *)p)[i]; return 1;
    case mxINT16_CLASS: *out = ((const int16_t *)p)[i]; return 1;
    case mxUINT16_CLASS: *out = ((const uint16_t *)p)[i]; return 1;
    case mxINT32_CLASS: *out = ((const int32_t *)p)[i]; return 1;
    case mxUINT32_CLASS: *out = ((const uint32_t *)p)[i]; return 1;
    case mxINT64_CLASS: *out = ((const int64_t *)p)[i]; return 1;
    case mxUINT64_CLASS:
        if (((const uint64_t *)p)[i] > (uint64_t)INT64_MAX) return 0;
        *out = (int64_t)((const uint64_t *)p)[i];
        return 1;
    case mxSINGLE_CLASS: d = ((const float *)p)[i]; break;
    case mxDOUBLE_CLASS: d = ((const double *)p)[i]; break;
    default: return 0;
    }
    /* 2^63 is exactly representable; anything in [-2^63, 2^63) and integral fits. */
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != floor(d)) return 0;
    *out = (int64_t)d;
    return 1;
}

static int is_plain_numeric(const mxArray *a) {
    return mxIsNumeric(a) && !mxIsComplex(a) && !mxIsSparse(a);
}

static void get_int64s(const mxArray *a, size_t n, int64_t *out, const char *what) {
    size_t i;
    if (!is_plain_numeric(a) || mxGetNumberOfElements(a) != n)
        fail_arg("%s must be %u real integers", what, (unsigned)n);
    for (i = 0; i < n; i++)
        if (!elem_int64(a, i, &out[i])) fail_arg("%s must hold integers (element %u is not one)", what, (unsigned)(i + 1));
}

static void get_doubles3(const mxArray *a, double *out, const char *what) {
    size_t i;
    if (!is_plain_numeric(a) || mxGetNumberOfElements(a) != 3) fail_arg("%s must be 3 real numbers", what);
    for (i = 0; i < 3; i++) {
        int64_t v;
        if (mxGetClassID(a) == mxDOUBLE_CLASS) out[i] = ((const double *)mxGetData(a))[i];
        else if (mxGetClassID(a) == mxSINGLE_CLASS) out[i] = ((const float *)mxGetData(a))[i];
        else if (elem_int64(a, i, &v)) out[i] = (double)v;
        else fail_arg("%s must be 3 real numbers", what);
    }
}

static uint32_t get_u32(const mxArray *a, const char *what) {
    int64_t v = 0;
    if (!is_plain_numeric(a) || mxGetNumberOfElements(a) != 1 || !elem_int64(a, 0, &v) || v < 0 ||
        v > (int64_t)UINT32_MAX)
        fail_arg("%s must be an integer >= 0", what);
    return (uint32_t)v;
}

/* A numeric array of labels (uint64 as they are; other classes must hold integers >= 0) as an
 * mxMalloc'ed uint64 array of *n elements (never NULL). */
static uint64_t *get_labels(const mxArray *a, size_t *n, const char *what) {
    uint64_t *out;
    size_t i;
    if (!is_plain_numeric(a)) fail_arg("%s must be real integers (uint64 for labels beyond 2^53)", what);
    *n = mxGetNumberOfElements(a);
    out = (uint64_t *)mxMalloc(*n ? *n * sizeof(uint64_t) : 1);
    if (mxGetClassID(a) == mxUINT64_CLASS) {
        if (*n) memcpy(out, mxGetData(a), *n * sizeof(uint64_t));
        return out;
    }
    for (i = 0; i < *n; i++) {
        int64_t x;
        if (!elem_int64(a, i, &x) || x < 0) {
            mxFree(out);
            fail_arg("%s must be non-negative integers", what);
        }
        out[i] = (uint64_t)x;
    }
    return out;
}

/* ---------------------------------------------------------------------------------------- */
/* Types. */

static mxClassID class_of(int32_t dtype) {
    switch (dtype) {
    case CV_DTYPE_UINT8: return mxUINT8_CLASS;
    case CV_DTYPE_INT8: return mxINT8_CLASS;
    case CV_DTYPE_UINT16: return mxUINT16_CLASS;
    case CV_DTYPE_INT16: return mxINT16_CLASS;
    case CV_DTYPE_UINT32: return mxUINT32_CLASS;
    case CV_DTYPE_INT32: return mxINT32_CLASS;
    case CV_DTYPE_UINT64: return mxUINT64_CLASS;
    case CV_DTYPE_INT64: return mxINT64_CLASS;
    case CV_DTYPE_FLOAT32: return mxSINGLE_CLASS;
    case CV_DTYPE_FLOAT64: return mxDOUBLE_CLASS;
    default: return mxUNKNOWN_CLASS;
    }
}

static const char *class_name(mxClassID c) {
    switch (c) {
    case mxUINT8_CLASS: return "uint8";
    case mxINT8_CLASS: return "int8";
    case mxUINT16_CLASS: return "uint16";
    case mxINT16_CLASS: return "int16";
    case mxUINT32_CLASS: return "uint32";
    case mxINT32_CLASS: return "int32";
    case mxUINT64_CLASS: return "uint64";
    case mxINT64_CLASS: return "int64";
    case mxSINGLE_CLASS: return "single";
    case mxDOUBLE_CLASS: return "double";
    case mxLOGICAL_CLASS: return "logical";
    case mxCHAR_CLASS: return "char";
    case mxCELL_CLASS: return "cell";
    case mxSTRUCT_CLASS: return "struct";
    default: return "an unsupported class";
    }
}

/* The layer's MATLAB class and channel count. */
static mxClassID layer_class(const cv_volume *v, uint32_t *channels, int32_t *dtype) {
    int32_t dt;
    mxClassID c;
    check(cv_data_type(v, &dt));
    check(cv_num_channels(v, channels));
    c = class_of(dt);
    if (c == mxUNKNOWN_CLASS) fail_id("cloudvolume:unsupported", "data type code %d has no MATLAB class", (int)dt);
    if (*channels == 0) fail_id("cloudvolume:decode", "the layer has no channels");
    if (dtype) *dtype = dt;
    return c;
}

/* The box [lo, hi): sizes (hi - lo), checked; returns the voxel count. An inverted box is
 * refused here; an empty one (some hi == lo) gives 0. */
static size_t box_dims(const int64_t lo[3], const int64_t hi[3], size_t dims[3]) {
    size_t total = 1;
    int d;
    for (d = 0; d < 3; d++) {
        if (hi[d] < lo[d])
            fail_arg("the box [%lld, %lld) on axis %c is inverted", (long long)lo[d], (long long)hi[d], "xyz"[d]);
        if ((uint64_t)(hi[d] - lo[d]) > (uint64_t)SIZE_MAX) fail_arg("the box is too large");
        dims[d] = (size_t)(hi[d] - lo[d]);
        if (dims[d] != 0 && total > SIZE_MAX / dims[d]) fail_arg("the box is too large");
        total *= dims[d];
    }
    return total;
}

/* Validates `mip` through the library (for calls that end up doing no I/O). */
/* The (id, mip, lo, hi) arguments most commands start with. */
static cv_volume *box_args(const mxArray *prhs[], uint32_t *mip, int64_t lo[3], int64_t hi[3]) {
    cv_volume *v = get_vol(prhs[0]);
    *mip = get_u32(prhs[1], "mip");
    get_int64s(prhs[2], 3, lo, "lo");
    get_int64s(prhs[3], 3, hi, "hi");
    return v;
}

static void check_mip(const cv_volume *v, uint32_t mip) {
    int64_t lo[3], hi[3];
    check(cv_bounds(v, mip, lo, hi));
}

/* ---------------------------------------------------------------------------------------- */
/* Commands. */

static void cmd_open(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    char *path, *opts;
    cv_volume *v = NULL;
    uint64_t id;
    (void)nlhs;
    need(nrhs, 2, "cloudvolume_mex('open', path, options_json)");
    path = get_string(prhs[0], "the cloudpath");
    opts = get_opt_string(prhs[1], "the options");
    reserve_one();
    check(cv_open(path, opts, &v));
    id = add_handle(v);
    plhs[0] = mxCreateNumericMatrix(1, 1, mxUINT64_CLASS, mxREAL);
    *(uint64_t *)mxGetData(plhs[0]) = id;
}

static void cmd_create(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    char *path, *info, *opts;
    cv_volume *v = NULL;
    uint64_t id;
    (void)nlhs;
    need(nrhs, 3, "cloudvolume_mex('create', path, info_json, options_json)");
    path = get_string(prhs[0], "the cloudpath");
    info = get_string(prhs[1], "the info");
    opts = get_opt_string(prhs[2], "the options");
    reserve_one();
    check(cv_create(path, info, opts, &v));
    id = add_handle(v);
    plhs[0] = mxCreateNumericMatrix(1, 1, mxUINT64_CLASS, mxREAL);
    *(uint64_t *)mxGetData(plhs[0]) = id;
}

static void cmd_free(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    uint64_t id;
    size_t i;
    int was_live = 0;
    (void)nlhs;
    need(nrhs, 1, "cloudvolume_mex('free', id)");
    id = id_of(prhs[0]);
    i = find_id(id);
    if (i != (size_t)-1) {
        cv_volume *v = reg[i].vol;
        reg[i] = reg[reg_len - 1];
        reg_len--;
        cv_free(v);
        was_live = 1;
        if (reg_len == 0 && is_locked) {
            mexUnlock();
            is_locked = 0;
        }
    }
    plhs[0] = mxCreateLogicalScalar(was_live ? 1 : 0);
}

static void cmd_meta(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    static const char *fields[] = {"data_type", "num_channels", "num_mips", "default_mip",
                                   "voxel_offset", "size", "chunk_size", "resolution", "encoding"};
    static const char *encodings[] = {"", "raw", "jpeg", "png", "compressed_segmentation", "compresso", "jxl", "other"};
    const cv_volume *v;
    int32_t dt;
    uint32_t nc, nm, dm, m;
    mxArray *s, *off, *size, *chunk, *res, *enc;
    double *po, *ps, *pc, *pr;
    (void)nlhs;
    need(nrhs, 1, "cloudvolume_mex('meta', id)");
    v = get_vol(prhs[0]);
    check(cv_data_type(v, &dt));
    check(cv_num_channels(v, &nc));
    check(cv_num_mips(v, &nm));
    check(cv_default_mip(v, &dm));
    off = mxCreateDoubleMatrix(nm, 3, mxREAL);
    size = mxCreateDoubleMatrix(nm, 3, mxREAL);
    chunk = mxCreateDoubleMatrix(nm, 3, mxREAL);
    res = mxCreateDoubleMatrix(nm, 3, mxREAL);
    enc = mxCreateCellMatrix(nm, 1);
    po = mxGetPr(off);
    ps = mxGetPr(size);
    pc = mxGetPr(chunk);
    pr = mxGetPr(res);
    for (m = 0; m < nm; m++) {
        int64_t lo[3], hi[3], cs[3];
        double r[3];
        int32_t e;
        int d;
        check(cv_bounds(v, m, lo, hi));
        check(cv_chunk_size(v, m, cs));
        check(cv_resolution(v, m, r));
        check(cv_encoding(v, m, &e));
        for (d = 0; d < 3; d++) {
            po[m + (size_t)d * nm] = (double)lo[d];
            ps[m + (size_t)d * nm] = (double)(hi[d] - lo[d]);
            pc[m + (size_t)d * nm] = (double)cs[d];
            pr[m + (size_t)d * nm] = r[d];
        }
        mxSetCell(enc, m, mxCreateString(e >= 1 && e <= 7 ? encodings[e] : "unknown"));
    }
    s = mxCreateStructMatrix(1, 1, (int)(sizeof fields / sizeof fields[0]), fields);
    mxSetField(s, 0, "data_type", mxCreateString(cv_dtype_name(dt)));
    mxSetField(s, 0, "num_channels", mxCreateDoubleScalar((double)nc));
    mxSetField(s, 0, "num_mips", mxCreateDoubleScalar((double)nm));
    mxSetField(s, 0, "default_mip", mxCreateDoubleScalar((double)dm));
    mxSetField(s, 0, "voxel_offset", off);
    mxSetField(s, 0, "size", size);
    mxSetField(s, 0, "chunk_size", chunk);
    mxSetField(s, 0, "resolution", res);
    mxSetField(s, 0, "encoding", enc);
    plhs[0] = s;
}

static void cmd_info(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    const cv_volume *v;
    char *s = NULL;
    (void)nlhs;
    need(nrhs, 1, "cloudvolume_mex('info', id)");
    v = get_vol(prhs[0]);
    check(cv_info_json(v, &s));
    plhs[0] = mxCreateString(s);
    cv_string_free(s);
}

static void cmd_cutout(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    const cv_volume *v;
    uint32_t mip, nc;
    int64_t lo[3], hi[3];
    size_t dims[3], total, elsize, len;
    mwSize mdims[4];
    mxClassID cls;
    mxArray *a;
    cv_status st;
    (void)nlhs;
    need(nrhs, 4, "cloudvolume_mex('cutout', id, mip, lo, hi)");
    v = box_args(prhs, &mip, lo, hi);
    cls = layer_class(v, &nc, NULL);
    total = box_dims(lo, hi, dims);
    mdims[0] = (mwSize)dims[0];
    mdims[1] = (mwSize)dims[1];
    mdims[2] = (mwSize)dims[2];
    mdims[3] = (mwSize)nc;
    if (total > 0 && total > SIZE_MAX / nc) fail_arg("the box is too large");
    total *= nc;
    a = mxCreateUninitNumericArray(nc > 1 ? 4 : 3, mdims, cls, mxREAL);
    if (a == NULL) fail_id("cloudvolume:outOfMemory", "out of memory for a %llu-element array", (unsigned long long)total);
    elsize = mxGetElementSize(a);
    if (total == 0) {
        check_mip(v, mip);
        plhs[0] = a;
        return;
    }
    if (total > SIZE_MAX / elsize) fail_arg("the box is too large");
    len = total * elsize;
    st = cv_cutout_into(v, mip, lo, hi, mxGetData(a), len);
    if (st != CV_OK) {
        mxDestroyArray(a);
        fail_status(st);
    }
    plhs[0] = a;
}

static void cmd_write(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    const cv_volume *v;
    uint32_t mip, nc;
    int64_t lo[3], hi[3];
    const mxArray *a;
    mxClassID cls;
    int32_t dt;
    mwSize nd;
    const mwSize *ad;
    size_t dims[4] = {1, 1, 1, 1}, total, d;
    (void)nlhs;
    (void)plhs;
    need(nrhs, 4, "cloudvolume_mex('write', id, mip, lo, A)");
    v = get_vol(prhs[0]);
    mip = get_u32(prhs[1], "mip");
    get_int64s(prhs[2], 3, lo, "lo");
    a = prhs[3];
    cls = layer_class(v, &nc, &dt);
    if (!mxIsNumeric(a) || mxIsComplex(a) || mxIsSparse(a) || mxGetClassID(a) != cls)
        fail_arg("the array is %s%s but the layer's data_type is %s (MATLAB class %s); convert it first, e.g. %s(A)",
                 mxIsComplex(a) ? "complex " : (mxIsSparse(a) ? "sparse " : ""), class_name(mxGetClassID(a)),
                 cv_dtype_name(dt), class_name(cls), class_name(cls));
    nd = mxGetNumberOfDimensions(a);
    ad = mxGetDimensions(a);
    if (nd > 4) fail_arg("the array has %d dimensions; writes take x-y-z or x-y-z-channel arrays", (int)nd);
    for (d = 0; d < (size_t)nd; d++) dims[d] = (size_t)ad[d];
    if (dims[3] != nc)
        fail_arg("the array has %llu channel(s) (size along dimension 4) but the layer has %u",
                 (unsigned long long)dims[3], (unsigned)nc);
    for (d = 0; d < 3; d++) {
        if (dims[d] > (size_t)INT64_MAX || lo[d] > INT64_MAX - (int64_t)dims[d]) fail_arg("the box is too large");
        hi[d] = lo[d] + (int64_t)dims[d];
    }
    total = mxGetNumberOfElements(a);
    if (total == 0) {
        check_mip(v, mip);
        return;
    }
    check(cv_write_from(v, mip, lo, hi, mxGetData(a), total * mxGetElementSize(a)));
}

static void cmd_points(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    const cv_volume *v;
    uint32_t mip, nc;
    const mxArray *p;
    size_t n, i, len;
    int64_t *xyz;
    mxClassID cls;
    mxArray *a;
    cv_status st;
    (void)nlhs;
    need(nrhs, 3, "cloudvolume_mex('points', id, mip, xyz)");
    v = get_vol(prhs[0]);
    mip = get_u32(prhs[1], "mip");
    p = prhs[2];
    if (!is_plain_numeric(p) || mxGetM(p) != 3 || mxGetNumberOfDimensions(p) != 2)
        fail_arg("the points must be a 3 x n real matrix");
    n = mxGetN(p);
    cls = layer_class(v, &nc, NULL);
    a = mxCreateNumericMatrix((mwSize)nc, (mwSize)n, cls, mxREAL);
    if (n == 0) {
        check_mip(v, mip);
        plhs[0] = a;
        return;
    }
    xyz = (int64_t *)mxMalloc(3 * n * sizeof *xyz);
    for (i = 0; i < 3 * n; i++)
        if (!elem_int64(p, i, &xyz[i]))
            fail_arg("point %llu has a coordinate that is not an integer", (unsigned long long)(i / 3 + 1));
    len = n * nc * mxGetElementSize(a);
    st = cv_scattered_points(v, mip, n, xyz, mxGetData(a), len);
    mxFree(xyz);
    if (st != CV_OK) {
        mxDestroyArray(a);
        fail_status(st);
    }
    plhs[0] = a;
}

static void cmd_exists(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    const cv_volume *v;
    uint32_t mip;
    int64_t lo[3], hi[3];
    size_t n = 0, i;
    uint8_t *flags;
    mxArray *a;
    mxLogical *pl;
    cv_status st;
    (void)nlhs;
    need(nrhs, 4, "cloudvolume_mex('exists', id, mip, lo, hi)");
    v = box_args(prhs, &mip, lo, hi);
    check(cv_chunk_count(v, mip, lo, hi, &n));
    a = mxCreateLogicalMatrix((mwSize)n, 1);
    if (n > 0) {
        flags = (uint8_t *)mxMalloc(n);
        st = cv_chunks_exist(v, mip, lo, hi, flags, n, NULL);
        if (st != CV_OK) {
            mxFree(flags);
            mxDestroyArray(a);
            fail_status(st);
        }
        pl = mxGetLogicals(a);
        for (i = 0; i < n; i++) pl[i] = flags[i] != 0;
        mxFree(flags);
    }
    plhs[0] = a;
}

/* ('unique', id, mip, lo, hi) -> n x 2 uint64: labels (sorted) and voxel counts. */
static void cmd_unique(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    const cv_volume *v;
    uint32_t mip;
    int64_t lo[3], hi[3];
    uint64_t *labels = NULL, *counts = NULL, *out;
    size_t n = 0, i;
    mxArray *a;
    (void)nlhs;
    need(nrhs, 4, "cloudvolume_mex('unique', id, mip, lo, hi)");
    v = box_args(prhs, &mip, lo, hi);
    check(cv_unique(v, mip, lo, hi, &labels, &counts, &n));
    a = mxCreateNumericMatrix((mwSize)n, 2, mxUINT64_CLASS, mxREAL);
    out = (uint64_t *)mxGetData(a);
    for (i = 0; i < n; i++) {
        out[i] = labels[i];
        out[n + i] = counts[i];
    }
    cv_labels_free(labels, n);
    cv_labels_free(counts, n);
    plhs[0] = a;
}

/* ('label_mask', id, mip, lo, hi, labels) -> logical array of the box's shape. */
static void cmd_label_mask(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    const cv_volume *v;
    uint32_t mip, nc;
    int64_t lo[3], hi[3];
    size_t dims[3], total, nl, i;
    mwSize mdims[4];
    uint64_t *labels;
    uint8_t *bytes;
    mxLogical *pl;
    mxArray *a;
    cv_status st;
    (void)nlhs;
    need(nrhs, 5, "cloudvolume_mex('label_mask', id, mip, lo, hi, labels)");
    v = box_args(prhs, &mip, lo, hi);
    labels = get_labels(prhs[4], &nl, "labels");
    layer_class(v, &nc, NULL);
    total = box_dims(lo, hi, dims);
    if (total > 0 && total > SIZE_MAX / nc) fail_arg("the box is too large");
    total *= nc;
    mdims[0] = (mwSize)dims[0];
    mdims[1] = (mwSize)dims[1];
    mdims[2] = (mwSize)dims[2];
    mdims[3] = (mwSize)nc;
    a = mxCreateLogicalArray(nc > 1 ? 4 : 3, mdims);
    bytes = (uint8_t *)mxMalloc(total ? total : 1);
    st = cv_label_mask_into(v, mip, lo, hi, labels, nl, bytes, total);
    mxFree(labels);
    if (st != CV_OK) {
        mxFree(bytes);
        mxDestroyArray(a);
        fail_status(st);
    }
    pl = mxGetLogicals(a);
    for (i = 0; i < total; i++) pl[i] = bytes[i] != 0;
    mxFree(bytes);
    plhs[0] = a;
}

/* ('point_box', id, mip, pt, size, coord_resolution or []) -> 2 x 3 double: lo; hi (half-open). */
static void cmd_point_box(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    const cv_volume *v;
    uint32_t mip;
    double pt[3], cr[3], *out;
    int64_t size[3], lo[3], hi[3];
    int have_cr, d;
    (void)nlhs;
    need(nrhs, 5, "cloudvolume_mex('point_box', id, mip, pt, size, coord_resolution)");
    v = get_vol(prhs[0]);
    mip = get_u32(prhs[1], "mip");
    get_doubles3(prhs[2], pt, "pt");
    get_int64s(prhs[3], 3, size, "size");
    have_cr = !mxIsEmpty(prhs[4]);
    if (have_cr) get_doubles3(prhs[4], cr, "coord_resolution");
    check(cv_point_box(v, mip, pt, size, have_cr ? cr : NULL, lo, hi));
    plhs[0] = mxCreateDoubleMatrix(2, 3, mxREAL);
    out = mxGetPr(plhs[0]);
    for (d = 0; d < 3; d++) {
        out[2 * d] = (double)lo[d];
        out[2 * d + 1] = (double)hi[d];
    }
}

/* ('renumber', id, mip, lo, hi) -> struct: data (the box, smallest unsigned class), labels. */
static void cmd_renumber(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    const cv_volume *v;
    uint32_t mip, nc;
    int64_t lo[3], hi[3];
    size_t dims[3], len = 0, n = 0, i, want;
    mwSize mdims[4];
    uint8_t *data = NULL;
    uint64_t *labels = NULL, *pl;
    int32_t dtype = 0;
    const char *fields[] = {"data", "labels"};
    mxArray *a, *l, *s;
    (void)nlhs;
    need(nrhs, 4, "cloudvolume_mex('renumber', id, mip, lo, hi)");
    v = box_args(prhs, &mip, lo, hi);
    layer_class(v, &nc, NULL);
    box_dims(lo, hi, dims);
    check(cv_renumber(v, mip, lo, hi, &data, &len, &dtype, &labels, &n));
    mdims[0] = (mwSize)dims[0];
    mdims[1] = (mwSize)dims[1];
    mdims[2] = (mwSize)dims[2];
    mdims[3] = (mwSize)nc;
    a = mxCreateUninitNumericArray(nc > 1 ? 4 : 3, mdims, class_of(dtype), mxREAL);
    want = (size_t)mxGetNumberOfElements(a) * (size_t)mxGetElementSize(a);
    if (len != want) {
        cv_bytes_free(data, len);
        cv_labels_free(labels, n);
        mxDestroyArray(a);
        mexErrMsgIdAndTxt("cloudvolume:internal", "cv_renumber gave %lu bytes for a box of %lu bytes",
                          (unsigned long)len, (unsigned long)want);
    }
    if (len) memcpy(mxGetData(a), data, len);
    l = mxCreateNumericMatrix((mwSize)n, 1, mxUINT64_CLASS, mxREAL);
    pl = (uint64_t *)mxGetData(l);
    for (i = 0; i < n; i++) pl[i] = labels[i];
    cv_bytes_free(data, len);
    cv_labels_free(labels, n);
    s = mxCreateStructMatrix(1, 1, 2, fields);
    mxSetField(s, 0, "data", a);
    mxSetField(s, 0, "labels", l);
    plhs[0] = s;
}

/* ('download_files', id, mip, lo, hi, decompress) -> struct array: name, data (uint8 column). */
static void cmd_download_files(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    const cv_volume *v;
    uint32_t mip;
    int64_t lo[3], hi[3], dec;
    cv_files *files = NULL;
    size_t n, i;
    const char *fields[] = {"name", "data"};
    mxArray *s;
    (void)nlhs;
    need(nrhs, 5, "cloudvolume_mex('download_files', id, mip, lo, hi, decompress)");
    v = box_args(prhs, &mip, lo, hi);
    get_int64s(prhs[4], 1, &dec, "decompress");
    check(cv_download_files(v, mip, lo, hi, dec != 0, &files));
    n = cv_files_count(files);
    s = mxCreateStructMatrix((mwSize)n, 1, 2, fields);
    for (i = 0; i < n; i++) {
        const char *name = NULL;
        const uint8_t *data = NULL;
        size_t len = 0;
        mxArray *d;
        cv_status st = cv_files_get(files, i, &name, &data, &len);
        if (st != CV_OK) {
            cv_files_free(files);
            mxDestroyArray(s);
            fail_status(st);
        }
        d = mxCreateNumericMatrix((mwSize)len, 1, mxUINT8_CLASS, mxREAL);
        if (len) memcpy(mxGetData(d), data, len);
        mxSetField(s, (mwIndex)i, "name", mxCreateString(name));
        mxSetField(s, (mwIndex)i, "data", d);
    }
    cv_files_free(files);
    plhs[0] = s;
}

static void cmd_delete_chunks(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    const cv_volume *v;
    uint32_t mip;
    int64_t lo[3], hi[3];
    (void)nlhs;
    (void)plhs;
    need(nrhs, 4, "cloudvolume_mex('delete_chunks', id, mip, lo, hi)");
    v = box_args(prhs, &mip, lo, hi);
    check(cv_delete(v, mip, lo, hi));
}

static void cmd_add_scale(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    cv_volume *v;
    int64_t factor[3], chunk[3];
    const int64_t *cp = NULL;
    uint32_t m = 0;
    (void)nlhs;
    need(nrhs, 3, "cloudvolume_mex('add_scale', id, factor, chunk_size_or_empty)");
    v = get_vol(prhs[0]);
    get_int64s(prhs[1], 3, factor, "the factor");
    if (!(mxIsEmpty(prhs[2]) && mxIsNumeric(prhs[2]))) {
        get_int64s(prhs[2], 3, chunk, "the chunk size");
        cp = chunk;
    }
    check(cv_add_scale(v, factor, cp, &m));
    plhs[0] = mxCreateDoubleScalar((double)m);
}

static void cmd_new_info(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    char *layer_type, *data_type, *encoding, *s = NULL;
    uint32_t nc;
    double res[3];
    int64_t off[3], size[3], chunk[3];
    (void)nlhs;
    need(nrhs, 8,
         "cloudvolume_mex('new_info', layer_type, data_type, encoding, num_channels, resolution, voxel_offset, "
         "size, chunk_size)");
    layer_type = get_string(prhs[0], "layer_type");
    data_type = get_string(prhs[1], "data_type");
    encoding = get_string(prhs[2], "encoding");
    nc = get_u32(prhs[3], "num_channels");
    get_doubles3(prhs[4], res, "resolution");
    get_int64s(prhs[5], 3, off, "voxel_offset");
    get_int64s(prhs[6], 3, size, "volume_size");
    get_int64s(prhs[7], 3, chunk, "chunk_size");
    check(cv_new_info(layer_type, data_type, encoding, nc, res, off, size, chunk, &s));
    plhs[0] = mxCreateString(s);
    cv_string_free(s);
}

static void cmd_file_exists(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    char *path, *opts, *key;
    cv_storage *st = NULL;
    int32_t yes = 0;
    cv_status s;
    (void)nlhs;
    need(nrhs, 3, "cloudvolume_mex('file_exists', path, options_json, key)");
    path = get_string(prhs[0], "the cloudpath");
    opts = get_opt_string(prhs[1], "the options");
    key = get_string(prhs[2], "the key");
    check(cv_storage_open(path, opts, &st));
    s = cv_storage_exists(st, key, &yes);
    if (s != CV_OK) {
        /* copy the message before cv_storage_free, a cv_* call */
        const char *e = cv_last_error();
        snprintf(msgbuf, sizeof msgbuf, "%s", e ? e : "");
        cv_storage_free(st);
        mexErrMsgIdAndTxt(status_id(s), "%s", msgbuf);
    }
    cv_storage_free(st);
    plhs[0] = mxCreateLogicalScalar(yes ? 1 : 0);
}

/* ---------------------------------------------------------------------------------------- */
/* Aligned image + segmentation cutouts, split masks, overlays (src/ffi/imagery.rs). */

/* A mip of a request: an integer; any negative value is -1 (the layer's default mip). */
static int32_t get_req_mip(const mxArray *a, const char *what) {
    int64_t v = 0;
    if (!is_plain_numeric(a) || mxGetNumberOfElements(a) != 1 || !elem_int64(a, 0, &v))
        fail_arg("%s must be an integer (or [] for the layer's default)", what);
    if (v < 0) return -1;
    if (v > INT32_MAX) fail_arg("%s %lld is too large", what, (long long)v);
    return (int32_t)v;
}

/* The (image_id, seg_id, lo, hi, resolution, image_mip, seg_mip, root_ids, scale_to_bounds)
 * arguments as a request; the root ids are mxMalloc'ed (freed by MATLAB on return). */
static void aligned_args(const mxArray *prhs[], const cv_volume **img, const cv_volume **seg,
                         cv_aligned_request *req) {
    const mxArray *r = prhs[7], *stb = prhs[8];
    memset(req, 0, sizeof *req);
    *img = get_vol(prhs[0]);
    *seg = get_vol(prhs[1]);
    get_int64s(prhs[2], 3, req->lo, "lo");
    get_int64s(prhs[3], 3, req->hi, "hi");
    if (!(mxIsEmpty(prhs[4]) && mxIsNumeric(prhs[4]))) get_doubles3(prhs[4], req->resolution, "resolution");
    req->image_mip = get_req_mip(prhs[5], "the image mip");
    req->segmentation_mip = get_req_mip(prhs[6], "the segmentation mip");
    if (mxIsChar(r)) {
        char *all = get_string(r, "root_ids");
        if (strcmp(all, "all") != 0) fail_arg("root_ids must be 'all' or numeric ids");
        req->root_ids = NULL;
        req->n_root_ids = 0;
    } else {
        size_t n = 0;
        req->root_ids = get_labels(r, &n, "root_ids");
        req->n_root_ids = n;
    }
    if (!(is_plain_numeric(stb) || mxIsLogical(stb)) || mxGetNumberOfElements(stb) != 1)
        fail_arg("scale_to_bounds must be true or false");
    req->scale_to_bounds = mxGetScalar(stb) != 0 ? 1 : 0;
}

static mxArray *grid_struct(const cv_aligned_grid *g) {
    static const char *fields[] = {"lo", "hi", "resolution", "image_mip", "segmentation_mip"};
    mxArray *s = mxCreateStructMatrix(1, 1, 5, fields);
    mxArray *lo = mxCreateDoubleMatrix(1, 3, mxREAL), *hi = mxCreateDoubleMatrix(1, 3, mxREAL),
            *res = mxCreateDoubleMatrix(1, 3, mxREAL);
    int d;
    for (d = 0; d < 3; d++) {
        mxGetPr(lo)[d] = (double)g->lo[d];
        mxGetPr(hi)[d] = (double)g->hi[d];
        mxGetPr(res)[d] = g->resolution[d];
    }
    mxSetField(s, 0, "lo", lo);
    mxSetField(s, 0, "hi", hi);
    mxSetField(s, 0, "resolution", res);
    mxSetField(s, 0, "image_mip", mxCreateDoubleScalar((double)g->image_mip));
    mxSetField(s, 0, "segmentation_mip", mxCreateDoubleScalar((double)g->segmentation_mip));
    return s;
}

#define ALIGNED_USAGE(cmd)                                                                       \
    "cloudvolume_mex('" cmd "', image_id, seg_id, lo, hi, resolution, image_mip, seg_mip, root_ids, " \
    "scale_to_bounds)"

static void cmd_aligned_grid(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    const cv_volume *img, *seg;
    cv_aligned_request req;
    cv_aligned_grid g;
    (void)nlhs;
    need(nrhs, 9, ALIGNED_USAGE("aligned_grid"));
    aligned_args(prhs, &img, &seg, &req);
    memset(&g, 0, sizeof g);
    check(cv_aligned_grid_of(img, seg, &req, &g));
    plhs[0] = grid_struct(&g);
}

static void cmd_aligned_cutout(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    static const char *fields[] = {"image", "segmentation", "grid"};
    const cv_volume *img, *seg;
    cv_aligned_request req;
    cv_aligned_grid g;
    uint32_t nc;
    mxClassID cls;
    size_t dims[3], n, ilen;
    mwSize mdims[4];
    mxArray *ia, *sa, *s;
    cv_status st;
    int d;
    (void)nlhs;
    need(nrhs, 9, ALIGNED_USAGE("aligned_cutout"));
    aligned_args(prhs, &img, &seg, &req);
    memset(&g, 0, sizeof g);
    check(cv_aligned_grid_of(img, seg, &req, &g));
    cls = layer_class(img, &nc, NULL);
    n = box_dims(g.lo, g.hi, dims);
    for (d = 0; d < 3; d++) mdims[d] = (mwSize)dims[d];
    mdims[3] = (mwSize)nc;
    if (n > 0 && n > SIZE_MAX / nc) fail_arg("the box is too large");
    ia = mxCreateUninitNumericArray(nc > 1 ? 4 : 3, mdims, cls, mxREAL);
    sa = mxCreateUninitNumericArray(3, mdims, mxUINT64_CLASS, mxREAL);
    if (ia == NULL || sa == NULL) fail_id("cloudvolume:outOfMemory", "out of memory for an aligned cutout of %llu voxels",
                                          (unsigned long long)n);
    ilen = n * nc * mxGetElementSize(ia);
    st = cv_aligned_cutout_into(img, seg, &req, mxGetData(ia), ilen, (uint64_t *)mxGetData(sa), n);
    if (st != CV_OK) {
        mxDestroyArray(ia);
        mxDestroyArray(sa);
        fail_status(st);
    }
    s = mxCreateStructMatrix(1, 1, 3, fields);
    mxSetField(s, 0, "image", ia);
    mxSetField(s, 0, "segmentation", sa);
    mxSetField(s, 0, "grid", grid_struct(&g));
    plhs[0] = s;
}

/* A uint64 array (the class is required: a segmentation's ids do not survive doubles). */
static const uint64_t *get_seg(const mxArray *a, const char *what) {
    if (!is_plain_numeric(a) || mxGetClassID(a) != mxUINT64_CLASS)
        fail_arg("%s must be a uint64 array (got %s); convert it first, e.g. uint64(seg)", what,
                 class_name(mxGetClassID(a)));
    return (const uint64_t *)mxGetData(a);
}

static void cmd_split_masks(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    const uint64_t *sv;
    uint64_t *ids;
    size_t n, nid, i, total;
    uint8_t *bytes;
    mxArray *a;
    mxLogical *pl;
    cv_status st;
    (void)nlhs;
    need(nrhs, 2, "cloudvolume_mex('split_masks', seg, ids)");
    sv = get_seg(prhs[0], "the segmentation");
    n = mxGetNumberOfElements(prhs[0]);
    ids = get_labels(prhs[1], &nid, "the ids");
    if (nid > 0 && n > SIZE_MAX / nid) fail_arg("the masks are too large");
    total = n * nid;
    a = mxCreateLogicalMatrix((mwSize)n, (mwSize)nid);
    bytes = (uint8_t *)mxMalloc(total ? total : 1);
    st = cv_split_masks_into(n ? sv : NULL, n, nid ? ids : NULL, nid, total ? bytes : NULL, total);
    mxFree(ids);
    if (st != CV_OK) {
        mxFree(bytes);
        mxDestroyArray(a);
        fail_status(st);
    }
    pl = mxGetLogicals(a);
    for (i = 0; i < total; i++) pl[i] = bytes[i] != 0;
    mxFree(bytes);
    plhs[0] = a;
}

static void cmd_segment_color(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    uint64_t *ids;
    size_t n, i;
    uint8_t *out;
    mxArray *a;
    (void)nlhs;
    need(nrhs, 1, "cloudvolume_mex('segment_color', ids)");
    ids = get_labels(prhs[0], &n, "the segment ids");
    a = mxCreateNumericMatrix((mwSize)n, 3, mxUINT8_CLASS, mxREAL);
    out = (uint8_t *)mxGetData(a);
    for (i = 0; i < n; i++) {
        uint8_t rgb[3];
        cv_status st = cv_segment_color(ids[i], rgb);
        if (st != CV_OK) {
            mxFree(ids);
            mxDestroyArray(a);
            fail_status(st);
        }
        out[i] = rgb[0];
        out[n + i] = rgb[1];
        out[2 * n + i] = rgb[2];
    }
    mxFree(ids);
    plhs[0] = a;
}

/* The (grey, seg, alpha, outline) arguments of the overlays: w x h uint8 and uint64 (x down
 * the columns, as a z slice of a cutout). */
static void overlay_args(const mxArray *prhs[], const uint8_t **grey, const uint64_t **seg, size_t *w, size_t *h,
                         float *alpha, uint32_t *outline) {
    const mxArray *g = prhs[0], *s = prhs[1];
    double a;
    if (!is_plain_numeric(g) || mxGetClassID(g) != mxUINT8_CLASS || mxGetNumberOfDimensions(g) != 2)
        fail_arg("the greyscale picture must be a 2-D uint8 array (x by y; got %s with %d dimensions)",
                 class_name(mxGetClassID(g)), (int)mxGetNumberOfDimensions(g));
    *seg = get_seg(s, "the segmentation");
    if (mxGetNumberOfDimensions(s) != 2 || mxGetM(s) != mxGetM(g) || mxGetN(s) != mxGetN(g))
        fail_arg("the segmentation must be the size of the greyscale picture (%llux%llu)",
                 (unsigned long long)mxGetM(g), (unsigned long long)mxGetN(g));
    *grey = (const uint8_t *)mxGetData(g);
    *w = (size_t)mxGetM(g);
    *h = (size_t)mxGetN(g);
    if (!is_plain_numeric(prhs[2]) || mxGetNumberOfElements(prhs[2]) != 1) fail_arg("alpha must be a real scalar");
    a = mxGetScalar(prhs[2]);
    *alpha = (float)a;
    *outline = get_u32(prhs[3], "outline");
    if (*w * *h == 0) {
        *grey = NULL;
        *seg = NULL;
    }
}

static void cmd_overlay_rgb(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    const uint8_t *grey;
    const uint64_t *seg;
    size_t w, h, x, y, n;
    float alpha;
    uint32_t outline;
    uint8_t *rgb, *out;
    mwSize dims[3];
    mxArray *a;
    cv_status st;
    (void)nlhs;
    need(nrhs, 4, "cloudvolume_mex('overlay_rgb', grey, seg, alpha, outline)");
    overlay_args(prhs, &grey, &seg, &w, &h, &alpha, &outline);
    n = w * h;
    rgb = (uint8_t *)mxMalloc(n ? 3 * n : 1);
    st = cv_overlay_rgb_into(grey, seg, w, h, alpha, outline, rgb, 3 * n);
    if (st != CV_OK) {
        mxFree(rgb);
        fail_status(st);
    }
    dims[0] = (mwSize)w;
    dims[1] = (mwSize)h;
    dims[2] = 3;
    a = mxCreateNumericArray(3, dims, mxUINT8_CLASS, mxREAL);
    out = (uint8_t *)mxGetData(a);
    /* interleaved RGB row by row -> x-y-channel */
    for (y = 0; y < h; y++)
        for (x = 0; x < w; x++) {
            size_t i = y * w + x;
            out[i] = rgb[3 * i];
            out[n + i] = rgb[3 * i + 1];
            out[2 * n + i] = rgb[3 * i + 2];
        }
    mxFree(rgb);
    plhs[0] = a;
}

static void cmd_overlay_png(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    const uint8_t *grey;
    const uint64_t *seg;
    size_t w, h, len = 0;
    float alpha;
    uint32_t outline;
    uint8_t *png = NULL;
    mxArray *a;
    (void)nlhs;
    need(nrhs, 4, "cloudvolume_mex('overlay_png', grey, seg, alpha, outline)");
    overlay_args(prhs, &grey, &seg, &w, &h, &alpha, &outline);
    check(cv_overlay_png(grey, seg, w, h, alpha, outline, &png, &len));
    a = mxCreateNumericMatrix((mwSize)len, 1, mxUINT8_CLASS, mxREAL);
    if (len) memcpy(mxGetData(a), png, len);
    cv_bytes_free(png, len);
    plhs[0] = a;
}

/* ---------------------------------------------------------------------------------------- */
/* Meshes and skeletons (src/ffi/objects.rs).
 *
 * Vertices cross as n x 3 single (x, y, z per row); faces (m x 3) and edges (e x 2) as double
 * holding 1-based vertex rows (MATLAB's patch / triangulation convention), converted here from
 * and to the library's 0-based uint32. Skeleton vertex attributes cross as n x k arrays of
 * their class, one row per vertex. The library's objects never leave this file: each command
 * copies what it needs into MATLAB arrays and releases them (see hold_meshes). */

/* Copy a row-major rows x cols matrix of `elsize`-byte elements to column-major (or back:
 * swap rows and cols). */
static void transpose_elems(void *dst, const void *src, size_t rows, size_t cols, size_t elsize) {
    unsigned char *d = (unsigned char *)dst;
    const unsigned char *s = (const unsigned char *)src;
    size_t r, c;
    for (r = 0; r < rows; r++)
        for (c = 0; c < cols; c++) memcpy(d + (c * rows + r) * elsize, s + (r * cols + c) * elsize, elsize);
}

/* n * k elements of `elsize` bytes, checked against overflow. */
static size_t bytes_of(size_t n, size_t k, size_t elsize, const char *what) {
    if (k != 0 && n > SIZE_MAX / k) fail_arg("%s are too large", what);
    n *= k;
    if (elsize != 0 && n > SIZE_MAX / elsize) fail_arg("%s are too large", what);
    return n * elsize;
}

/* `n` NULL pointers for the library's meshes (skeletons), held until release_held(). */
static cv_mesh **hold_meshes(size_t n) {
    release_held();
    held_meshes = (cv_mesh **)calloc(n ? n : 1, sizeof *held_meshes);
    if (held_meshes == NULL) fail_id("cloudvolume:outOfMemory", "out of memory for %llu meshes", (unsigned long long)n);
    n_held_meshes = n;
    return held_meshes;
}

static cv_skeleton **hold_skeletons(size_t n) {
    release_held();
    held_skeletons = (cv_skeleton **)calloc(n ? n : 1, sizeof *held_skeletons);
    if (held_skeletons == NULL)
        fail_id("cloudvolume:outOfMemory", "out of memory for %llu skeletons", (unsigned long long)n);
    n_held_skeletons = n;
    return held_skeletons;
}

/* One segment id: a non-negative integer scalar (uint64 for ids beyond 2^53). */
static uint64_t get_segid(const mxArray *a, const char *what) {
    size_t n = 0;
    uint64_t *ids, id;
    if (!is_plain_numeric(a) || mxGetNumberOfElements(a) != 1)
        fail_arg("%s must be one non-negative integer (uint64 beyond 2^53)", what);
    ids = get_labels(a, &n, what);
    id = ids[0];
    mxFree(ids);
    return id;
}

/* Segment ids: a non-empty numeric vector of non-negative integers (mxMalloc'ed); *n their
 * number. */
static uint64_t *get_segids(const mxArray *a, size_t *n) {
    uint64_t *ids;
    if (!is_plain_numeric(a))
        fail_arg("the segment ids must be a real numeric vector of non-negative integers (uint64 beyond 2^53); got %s",
                 class_name(mxGetClassID(a)));
    ids = get_labels(a, n, "the segment ids");
    if (*n == 0) fail_arg("give at least one segment id");
    return ids;
}

/* An integer scalar in [lo, hi] (a logical is 0 or 1). */
static int64_t get_int_in(const mxArray *a, int64_t lo, int64_t hi, const char *what) {
    int64_t v = 0;
    int ok = 1;
    if (!(is_plain_numeric(a) || mxIsLogical(a)) || mxGetNumberOfElements(a) != 1)
        fail_arg("%s must be an integer scalar", what);
    if (mxIsLogical(a)) v = mxGetLogicals(a)[0] ? 1 : 0;
    else ok = elem_int64(a, 0, &v);
    if (!ok || v < lo || v > hi)
        fail_arg("%s must be an integer from %lld to %lld", what, (long long)lo, (long long)hi);
    return v;
}

/* The (ids, lod, weld, chunk_size or [], allow_missing) arguments of a mesh read. */
typedef struct {
    uint64_t *ids;
    size_t n;
    int32_t lod, weld, allow_missing;
    int64_t chunk[3];
    const int64_t *chunk_size; /* NULL or chunk */
} mesh_request;

static void mesh_args(const mxArray *prhs[], mesh_request *r) {
    r->ids = get_segids(prhs[0], &r->n);
    r->lod = (int32_t)get_int_in(prhs[1], -1, INT32_MAX, "lod (>= 0, or -1 for the coarsest)");
    r->weld = (int32_t)get_int_in(prhs[2], -1, 1, "weld (-1 for the default, 0 or 1)");
    r->chunk_size = NULL;
    if (!(mxIsEmpty(prhs[3]) && mxIsNumeric(prhs[3]))) {
        get_int64s(prhs[3], 3, r->chunk, "chunk_size");
        r->chunk_size = r->chunk;
    }
    r->allow_missing = (int32_t)get_int_in(prhs[4], 0, 1, "allow_missing (0 or 1)");
}

/* Vertices (n x 3 single) from the library's x y z rows. */
static mxArray *vertices_matrix(const float *xyz, size_t n) {
    mxArray *a = mxCreateNumericMatrix((mwSize)n, 3, mxSINGLE_CLASS, mxREAL);
    if (n) transpose_elems(mxGetData(a), xyz, n, 3, sizeof(float));
    return a;
}

/* 0-based uint32 rows of k indices as an n x k double matrix of 1-based indices. */
static mxArray *index_matrix(const uint32_t *idx, size_t n, size_t k) {
    mxArray *a = mxCreateDoubleMatrix((mwSize)n, (mwSize)k, mxREAL);
    double *p = mxGetPr(a);
    size_t r, c;
    for (r = 0; r < n; r++)
        for (c = 0; c < k; c++) p[c * n + r] = (double)idx[r * k + c] + 1.0;
    return a;
}

static mxArray *uint64_scalar(uint64_t v) {
    mxArray *a = mxCreateNumericMatrix(1, 1, mxUINT64_CLASS, mxREAL);
    *(uint64_t *)mxGetData(a) = v;
    return a;
}

/* Element i of struct array s gets the mesh's vertices and faces. */
static void set_mesh_fields(mxArray *s, mwIndex i, const cv_mesh *m) {
    size_t nv = 0, nf = 0, vlen, flen;
    float *vb;
    uint32_t *fb;
    check(cv_mesh_counts(m, &nv, &nf));
    vlen = bytes_of(nv, 3, sizeof(float), "the vertices");
    flen = bytes_of(nf, 3, sizeof(uint32_t), "the faces");
    vb = (float *)mxMalloc(vlen ? vlen : 1);
    if (nv) check(cv_mesh_vertices_into(m, vb, vlen));
    mxSetField(s, i, "vertices", vertices_matrix(vb, nv));
    mxFree(vb);
    fb = (uint32_t *)mxMalloc(flen ? flen : 1);
    if (nf) check(cv_mesh_faces_into(m, fb, flen));
    mxSetField(s, i, "faces", index_matrix(fb, nf, 3));
    mxFree(fb);
}

/* Element j of struct array s gets the skeleton's vertices, edges, attribute names (1 x k
 * cell of char) and values (1 x k cell of n x components arrays of each attribute's class). */
static void set_skeleton_fields(mxArray *s, mwIndex j, const cv_skeleton *sk) {
    size_t nv = 0, ne = 0, na = 0, i, vlen, elen;
    float *vb;
    uint32_t *eb;
    mxArray *names, *values;
    check(cv_skeleton_counts(sk, &nv, &ne, &na));
    vlen = bytes_of(nv, 3, sizeof(float), "the vertices");
    elen = bytes_of(ne, 2, sizeof(uint32_t), "the edges");
    vb = (float *)mxMalloc(vlen ? vlen : 1);
    if (nv) check(cv_skeleton_vertices_into(sk, vb, vlen));
    mxSetField(s, j, "vertices", vertices_matrix(vb, nv));
    mxFree(vb);
    eb = (uint32_t *)mxMalloc(elen ? elen : 1);
    if (ne) check(cv_skeleton_edges_into(sk, eb, elen));
    mxSetField(s, j, "edges", index_matrix(eb, ne, 2));
    mxFree(eb);
    names = mxCreateCellMatrix(1, (mwSize)na);
    values = mxCreateCellMatrix(1, (mwSize)na);
    mxSetField(s, j, "names", names);
    mxSetField(s, j, "values", values);
    for (i = 0; i < na; i++) {
        const char *name = NULL;
        int32_t dt = 0;
        uint32_t nc = 0;
        mxClassID cls;
        size_t len, es;
        void *buf;
        mxArray *a;
        check(cv_skeleton_attribute(sk, i, &name, &dt, &nc));
        cls = class_of(dt);
        es = cv_dtype_size(dt);
        if (cls == mxUNKNOWN_CLASS || es == 0 || nc == 0)
            fail_id("cloudvolume:unsupported", "skeleton attribute %s has data type code %d and %u components",
                    name ? name : "(unnamed)", (int)dt, (unsigned)nc);
        /* the cell takes the name first: nothing here outlives the skeleton */
        mxSetCell(names, (mwIndex)i, mxCreateString(name ? name : ""));
        len = bytes_of(nv, nc, es, "the attribute values");
        buf = mxMalloc(len ? len : 1);
        if (len) check(cv_skeleton_attribute_into(sk, i, buf, len));
        a = mxCreateNumericMatrix((mwSize)nv, (mwSize)nc, cls, mxREAL);
        if (len) transpose_elems(mxGetData(a), buf, nv, nc, es);
        mxFree(buf);
        mxSetCell(values, (mwIndex)i, a);
    }
}

/* An n x 3 single matrix of vertices as x y z rows (mxMalloc'ed, never NULL); *n its rows. */
static float *get_vertices(const mxArray *a, size_t *n) {
    float *out;
    if (!mxIsSingle(a) || mxIsComplex(a) || mxIsSparse(a) || mxGetNumberOfDimensions(a) != 2 ||
        (mxGetN(a) != 3 && mxGetNumberOfElements(a) != 0))
        fail_arg("the vertices must be an n x 3 real single matrix (x, y, z per row); got a%s %s array with %d "
                 "dimensions", mxIsComplex(a) ? " complex" : (mxIsSparse(a) ? " sparse" : ""),
                 class_name(mxGetClassID(a)), (int)mxGetNumberOfDimensions(a));
    *n = mxGetNumberOfElements(a) ? (size_t)mxGetM(a) : 0;
    out = (float *)mxMalloc(*n ? bytes_of(*n, 3, sizeof(float), "the vertices") : 1);
    if (*n) transpose_elems(out, mxGetData(a), 3, *n, sizeof(float));
    return out;
}

/* An m x k matrix of 1-based vertex rows (integers in 1..nv) as 0-based uint32 rows
 * (mxMalloc'ed, never NULL); *m its rows. */
static uint32_t *get_indices(const mxArray *a, size_t k, size_t nv, size_t *m, const char *what) {
    uint32_t *out;
    size_t r, c, rows;
    if (!is_plain_numeric(a) || mxGetNumberOfDimensions(a) != 2 || (mxGetN(a) != k && mxGetNumberOfElements(a) != 0))
        fail_arg("the %s must be an m x %u real (non-sparse) matrix of vertex rows (1-based)", what, (unsigned)k);
    rows = mxGetNumberOfElements(a) ? (size_t)mxGetM(a) : 0;
    out = (uint32_t *)mxMalloc(rows ? bytes_of(rows, k, sizeof(uint32_t), what) : 1);
    for (r = 0; r < rows; r++)
        for (c = 0; c < k; c++) {
            int64_t v = 0;
            if (!elem_int64(a, c * rows + r, &v))
                fail_arg("the %s: row %llu holds a value that is not an integer (vertex rows, 1-based)", what,
                         (unsigned long long)(r + 1));
            if (v < 1 || (uint64_t)v > (uint64_t)nv || (uint64_t)v > 4294967296ULL)
                fail_arg("the %s: row %llu names vertex %lld of %llu (vertex rows are 1-based)", what,
                         (unsigned long long)(r + 1), (long long)v, (unsigned long long)nv);
            out[r * k + c] = (uint32_t)(v - 1);
        }
    *m = rows;
    return out;
}

/* ('mesh_get', id, ids, lod, weld, chunk_size or [], allow_missing) -> struct (vertices n x 3
 * single, faces m x 3 double, 1-based): the meshes of ids as one (cv_mesh_get). */
static void cmd_mesh_get(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    static const char *fields[] = {"vertices", "faces"};
    const cv_volume *v;
    mesh_request r;
    cv_mesh **m;
    mxArray *s;
    (void)nlhs;
    need(nrhs, 6, "cloudvolume_mex('mesh_get', id, ids, lod, weld, chunk_size, allow_missing)");
    v = get_vol(prhs[0]);
    mesh_args(prhs + 1, &r);
    m = hold_meshes(1);
    check(cv_mesh_get(v, r.ids, r.n, r.lod, r.weld, r.chunk_size, r.allow_missing, &m[0]));
    if (m[0] == NULL) fail_id("cloudvolume:internal", "cv_mesh_get succeeded without a mesh");
    s = mxCreateStructMatrix(1, 1, 2, fields);
    set_mesh_fields(s, 0, m[0]);
    release_held();
    mxFree(r.ids);
    plhs[0] = s;
}

/* ('mesh_get_each', id, ids, lod, weld, chunk_size or [], allow_missing) -> 1 x k struct array
 * (id uint64, vertices, faces): each id's mesh on its own, in the order of ids
 * (cv_mesh_get_each); ids without a mesh are left out when allow_missing is 1. */
static void cmd_mesh_get_each(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    static const char *fields[] = {"id", "vertices", "faces"};
    const cv_volume *v;
    mesh_request r;
    cv_mesh **m;
    mxArray *s;
    size_t i, k = 0;
    (void)nlhs;
    need(nrhs, 6, "cloudvolume_mex('mesh_get_each', id, ids, lod, weld, chunk_size, allow_missing)");
    v = get_vol(prhs[0]);
    mesh_args(prhs + 1, &r);
    m = hold_meshes(r.n);
    check(cv_mesh_get_each(v, r.ids, r.n, r.lod, r.weld, r.chunk_size, r.allow_missing, m));
    for (i = 0; i < r.n; i++) {
        if (m[i] != NULL) k++;
        else if (!r.allow_missing)
            fail_id("cloudvolume:internal", "cv_mesh_get_each gave no mesh for segment %llu", (unsigned long long)r.ids[i]);
    }
    s = mxCreateStructMatrix(1, (mwSize)k, 3, fields);
    for (i = 0, k = 0; i < r.n; i++) {
        if (m[i] == NULL) continue;
        mxSetField(s, (mwIndex)k, "id", uint64_scalar(r.ids[i]));
        set_mesh_fields(s, (mwIndex)k, m[i]);
        cv_mesh_free(m[i]);
        m[i] = NULL;
        k++;
    }
    release_held();
    mxFree(r.ids);
    plhs[0] = s;
}

/* ('mesh_save', id, ids, lod, weld, chunk_size or [], allow_missing, path) -> nothing: the
 * meshes of ids as one, saved as OBJ, PLY or STL by the extension of path. */
static void cmd_mesh_save(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    const cv_volume *v;
    mesh_request r;
    cv_mesh **m;
    char *path;
    (void)nlhs;
    (void)plhs;
    need(nrhs, 7, "cloudvolume_mex('mesh_save', id, ids, lod, weld, chunk_size, allow_missing, path)");
    v = get_vol(prhs[0]);
    mesh_args(prhs + 1, &r);
    path = get_string(prhs[6], "the path");
    m = hold_meshes(1);
    check(cv_mesh_get(v, r.ids, r.n, r.lod, r.weld, r.chunk_size, r.allow_missing, &m[0]));
    check(cv_mesh_save(m[0], path));
    release_held();
    mxFree(r.ids);
    mxFree(path);
}

/* ('mesh_lods', id, segid) -> double. */
static void cmd_mesh_lods(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    const cv_volume *v;
    uint64_t id;
    uint32_t n = 0;
    (void)nlhs;
    need(nrhs, 2, "cloudvolume_mex('mesh_lods', id, segid)");
    v = get_vol(prhs[0]);
    id = get_segid(prhs[1], "the segment id");
    check(cv_mesh_lods(v, id, &n));
    plhs[0] = mxCreateDoubleScalar((double)n);
}

/* ('mesh_put', id, segid, vertices n x 3 single, faces m x 3 1-based) -> nothing. */
static void cmd_mesh_put(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    const cv_volume *v;
    uint64_t id;
    float *vb;
    uint32_t *fb;
    size_t nv = 0, nf = 0;
    cv_status st;
    (void)nlhs;
    (void)plhs;
    need(nrhs, 4, "cloudvolume_mex('mesh_put', id, segid, vertices, faces)");
    v = get_vol(prhs[0]);
    id = get_segid(prhs[1], "the segment id");
    vb = get_vertices(prhs[2], &nv);
    fb = get_indices(prhs[3], 3, nv, &nf, "faces");
    st = cv_mesh_put(v, id, vb, nv, fb, nf);
    mxFree(vb);
    mxFree(fb);
    check(st);
}

/* ('mesh_info', id) -> char: the mesh directory's info JSON. */
static void cmd_mesh_info(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    char *s = NULL;
    mxArray *a;
    (void)nlhs;
    need(nrhs, 1, "cloudvolume_mex('mesh_info', id)");
    check(cv_mesh_info_json(get_vol(prhs[0]), &s));
    a = mxCreateString(s);
    cv_string_free(s);
    plhs[0] = a;
}

/* ('skeleton_info', id) -> char: the skeleton directory's info JSON. */
static void cmd_skeleton_info(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    char *s = NULL;
    mxArray *a;
    (void)nlhs;
    need(nrhs, 1, "cloudvolume_mex('skeleton_info', id)");
    check(cv_skeleton_info_json(get_vol(prhs[0]), &s));
    a = mxCreateString(s);
    cv_string_free(s);
    plhs[0] = a;
}

/* ('skeleton_get', id, segid) -> struct (vertices n x 3 single, edges e x 2 double 1-based,
 * names 1 x k cell of char, values 1 x k cell: n x components of the attribute's class). */
static void cmd_skeleton_get(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    static const char *fields[] = {"vertices", "edges", "names", "values"};
    const cv_volume *v;
    uint64_t id;
    cv_skeleton **sk;
    mxArray *s;
    (void)nlhs;
    need(nrhs, 2, "cloudvolume_mex('skeleton_get', id, segid)");
    v = get_vol(prhs[0]);
    id = get_segid(prhs[1], "the segment id");
    sk = hold_skeletons(1);
    check(cv_skeleton_get(v, id, &sk[0]));
    if (sk[0] == NULL) fail_id("cloudvolume:internal", "cv_skeleton_get succeeded without a skeleton");
    s = mxCreateStructMatrix(1, 1, 4, fields);
    set_skeleton_fields(s, 0, sk[0]);
    release_held();
    plhs[0] = s;
}

/* ('skeleton_get_each', id, ids, allow_missing) -> 1 x k struct array (id uint64, vertices,
 * edges, names, values as skeleton_get's), in the order of ids (cv_skeleton_get_each); ids
 * without a skeleton are left out when allow_missing is 1. */
static void cmd_skeleton_get_each(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    static const char *fields[] = {"id", "vertices", "edges", "names", "values"};
    const cv_volume *v;
    uint64_t *ids;
    size_t n = 0, i, k = 0;
    int32_t allow;
    cv_skeleton **sk;
    mxArray *s;
    (void)nlhs;
    need(nrhs, 3, "cloudvolume_mex('skeleton_get_each', id, ids, allow_missing)");
    v = get_vol(prhs[0]);
    ids = get_segids(prhs[1], &n);
    allow = (int32_t)get_int_in(prhs[2], 0, 1, "allow_missing (0 or 1)");
    sk = hold_skeletons(n);
    check(cv_skeleton_get_each(v, ids, n, allow, sk));
    for (i = 0; i < n; i++) {
        if (sk[i] != NULL) k++;
        else if (!allow)
            fail_id("cloudvolume:internal", "cv_skeleton_get_each gave no skeleton for segment %llu",
                    (unsigned long long)ids[i]);
    }
    s = mxCreateStructMatrix(1, (mwSize)k, 5, fields);
    for (i = 0, k = 0; i < n; i++) {
        if (sk[i] == NULL) continue;
        mxSetField(s, (mwIndex)k, "id", uint64_scalar(ids[i]));
        set_skeleton_fields(s, (mwIndex)k, sk[i]);
        cv_skeleton_free(sk[i]);
        sk[i] = NULL;
        k++;
    }
    release_held();
    mxFree(ids);
    plhs[0] = s;
}

/* ('skeleton_save', id, segid, path) -> nothing: SWC. */
static void cmd_skeleton_save(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    const cv_volume *v;
    uint64_t id;
    char *path;
    cv_skeleton **sk;
    (void)nlhs;
    (void)plhs;
    need(nrhs, 3, "cloudvolume_mex('skeleton_save', id, segid, path)");
    v = get_vol(prhs[0]);
    id = get_segid(prhs[1], "the segment id");
    path = get_string(prhs[2], "the path");
    sk = hold_skeletons(1);
    check(cv_skeleton_get(v, id, &sk[0]));
    check(cv_skeleton_save_swc(sk[0], path));
    release_held();
    mxFree(path);
}

/* A little JSON reader, enough for the skeleton info the library writes: the data_type and
 * num_components of each member of its "vertex_attributes" (in order). Any text it does not
 * understand is an error, never a read past the end. */
typedef struct {
    const char *p, *end;
} jsrc;

static void j_ws(jsrc *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

/* A string at j->p: its raw bytes (escapes kept) [*s, *s + *n). */
static int j_string(jsrc *j, const char **s, size_t *n) {
    j_ws(j);
    if (j->p >= j->end || *j->p != '"') return 0;
    j->p++;
    *s = j->p;
    while (j->p < j->end && *j->p != '"') {
        if (*j->p == '\\') j->p++;
        j->p++;
    }
    if (j->p >= j->end) return 0;
    *n = (size_t)(j->p - *s);
    j->p++;
    return 1;
}

static int j_skip(jsrc *j, int depth) {
    const char *s;
    size_t n;
    if (depth > 64) return 0;
    j_ws(j);
    if (j->p >= j->end) return 0;
    if (*j->p == '"') return j_string(j, &s, &n);
    if (*j->p == '{' || *j->p == '[') {
        char close = *j->p == '{' ? '}' : ']';
        int obj = *j->p == '{';
        j->p++;
        j_ws(j);
        if (j->p < j->end && *j->p == close) {
            j->p++;
            return 1;
        }
        for (;;) {
            if (obj) {
                if (!j_string(j, &s, &n)) return 0;
                j_ws(j);
                if (j->p >= j->end || *j->p != ':') return 0;
                j->p++;
            }
            if (!j_skip(j, depth + 1)) return 0;
            j_ws(j);
            if (j->p >= j->end) return 0;
            if (*j->p == ',') {
                j->p++;
                continue;
            }
            if (*j->p != close) return 0;
            j->p++;
            return 1;
        }
    }
    /* a number or a literal */
    s = j->p;
    while (j->p < j->end && (strchr("+-.eE0123456789", *j->p) != NULL || (*j->p >= 'a' && *j->p <= 'z'))) j->p++;
    return j->p > s;
}

/* The attributes of the skeleton info `text`: codes and components in info order
 * (mxMalloc'ed); returns their number, or -1 when the text cannot be read. */
static long skeleton_attr_specs(const char *text, int32_t **codes, uint32_t **comps) {
    jsrc j;
    const char *s;
    size_t n;
    long count = 0, cap = 8;
    j.p = text;
    j.end = text + strlen(text);
    *codes = (int32_t *)mxMalloc(cap * sizeof **codes);
    *comps = (uint32_t *)mxMalloc(cap * sizeof **comps);
    j_ws(&j);
    if (j.p >= j.end || *j.p != '{') return -1;
    j.p++;
    for (;;) {
        int is_attrs;
        if (!j_string(&j, &s, &n)) return -1;
        is_attrs = n == 17 && memcmp(s, "vertex_attributes", 17) == 0;
        j_ws(&j);
        if (j.p >= j.end || *j.p != ':') return -1;
        j.p++;
        if (!is_attrs) {
            if (!j_skip(&j, 0)) return -1;
        } else {
            j_ws(&j);
            if (j.p >= j.end || *j.p != '[') return -1;
            j.p++;
            j_ws(&j);
            if (j.p < j.end && *j.p == ']') return 0;
            for (;;) {
                int32_t code = 0;
                long nc = -1;
                j_ws(&j);
                if (j.p >= j.end || *j.p != '{') return -1;
                j.p++;
                for (;;) {
                    const char *k;
                    size_t kn;
                    if (!j_string(&j, &k, &kn)) return -1;
                    j_ws(&j);
                    if (j.p >= j.end || *j.p != ':') return -1;
                    j.p++;
                    if (kn == 9 && memcmp(k, "data_type", 9) == 0) {
                        int32_t c;
                        if (!j_string(&j, &s, &n)) return -1;
                        for (c = 1; c <= 10; c++) {
                            const char *name = cv_dtype_name(c);
                            if (name != NULL && strlen(name) == n && memcmp(name, s, n) == 0) code = c;
                        }
                    } else if (kn == 14 && memcmp(k, "num_components", 14) == 0) {
                        char *e;
                        j_ws(&j);
                        nc = strtol(j.p, &e, 10);
                        if (e == j.p || e > j.end) return -1;
                        j.p = e;
                    } else if (!j_skip(&j, 1)) {
                        return -1;
                    }
                    j_ws(&j);
                    if (j.p < j.end && *j.p == ',') {
                        j.p++;
                        continue;
                    }
                    if (j.p >= j.end || *j.p != '}') return -1;
                    j.p++;
                    break;
                }
                if (code == 0 || nc < 1 || nc > 1000000) return -1;
                if (count == cap) {
                    cap *= 2;
                    *codes = (int32_t *)mxRealloc(*codes, cap * sizeof **codes);
                    *comps = (uint32_t *)mxRealloc(*comps, cap * sizeof **comps);
                }
                (*codes)[count] = code;
                (*comps)[count] = (uint32_t)nc;
                count++;
                j_ws(&j);
                if (j.p < j.end && *j.p == ',') {
                    j.p++;
                    continue;
                }
                if (j.p >= j.end || *j.p != ']') return -1;
                return count;
            }
        }
        j_ws(&j);
        if (j.p < j.end && *j.p == ',') {
            j.p++;
            continue;
        }
        return 0; /* no vertex_attributes member */
    }
}

/* ('skeleton_put', id, segid, vertices n x 3 single, edges e x 2 1-based, values) -> nothing.
 * values: {} (no attributes) or a cell of one n x components array per attribute of the
 * skeleton info, in its order, each of the attribute's class. */
static void cmd_skeleton_put(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    const cv_volume *v;
    uint64_t id;
    float *vb;
    uint32_t *eb, *comps = NULL;
    int32_t *codes = NULL;
    size_t nv = 0, ne = 0, na, i;
    const mxArray *vals;
    const void **bufs = NULL;
    char *info = NULL;
    long nspec;
    cv_status st;
    (void)nlhs;
    (void)plhs;
    need(nrhs, 5, "cloudvolume_mex('skeleton_put', id, segid, vertices, edges, values)");
    v = get_vol(prhs[0]);
    id = get_segid(prhs[1], "the segment id");
    vb = get_vertices(prhs[2], &nv);
    eb = get_indices(prhs[3], 2, nv, &ne, "edges");
    vals = prhs[4];
    if (!mxIsCell(vals)) fail_arg("the attribute values must be a cell array ({} for none)");
    na = mxGetNumberOfElements(vals);
    if (na > 0) {
        check(cv_skeleton_info_json(v, &info));
        nspec = skeleton_attr_specs(info, &codes, &comps);
        cv_string_free(info);
        if (nspec < 0) fail_id("cloudvolume:decode", "the skeleton info's vertex_attributes cannot be read");
        if ((size_t)nspec != na)
            fail_arg("the skeleton info lists %ld vertex attribute(s); %llu given (give all, in its order, or none)", nspec,
                     (unsigned long long)na);
        bufs = (const void **)mxMalloc(na * sizeof *bufs);
        for (i = 0; i < na; i++) {
            const mxArray *a = mxGetCell(vals, (mwIndex)i);
            mxClassID cls = class_of(codes[i]);
            size_t k = comps[i], es = cv_dtype_size(codes[i]), len;
            void *buf;
            if (a == NULL || !is_plain_numeric(a) || mxGetClassID(a) != cls || mxGetNumberOfDimensions(a) != 2)
                fail_arg("vertex attribute %u must be a real %s matrix (the info's %s), got %s", (unsigned)(i + 1),
                         class_name(cls), cv_dtype_name(codes[i]), a ? class_name(mxGetClassID(a)) : "nothing");
            if (!((size_t)mxGetM(a) == nv && (size_t)mxGetN(a) == k) &&
                !(k == 1 && (size_t)mxGetNumberOfElements(a) == nv && (mxGetM(a) == 1 || mxGetN(a) == 1)) &&
                !(nv == 0 && mxGetNumberOfElements(a) == 0))
                fail_arg("vertex attribute %u must be %llu x %llu (vertices x components), got %llu x %llu",
                         (unsigned)(i + 1), (unsigned long long)nv, (unsigned long long)k,
                         (unsigned long long)mxGetM(a), (unsigned long long)mxGetN(a));
            len = bytes_of(nv, k, es, "the attribute values");
            buf = mxMalloc(len ? len : 1);
            if (len) transpose_elems(buf, mxGetData(a), k, nv, es);
            bufs[i] = buf;
        }
    }
    st = cv_skeleton_put(v, id, vb, nv, eb, ne, na ? (const void *const *)bufs : NULL, na);
    check(st);
}

/* ---------------------------------------------------------------------------------------- */
/* Services (src/ffi/services.rs). */

/* ('dvid_create_repo', server, alias, description, options_json or []) -> char: the root UUID
 * of a new repo (cv_dvid_create_repo; alias and description may be ''). */
static void cmd_dvid_create_repo(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    char *server, *alias, *desc, *opts, *uuid = NULL;
    (void)nlhs;
    need(nrhs, 4, "cloudvolume_mex('dvid_create_repo', server, alias, description, options_json)");
    server = get_string(prhs[0], "the server");
    alias = get_string(prhs[1], "the alias");
    desc = get_string(prhs[2], "the description");
    opts = get_opt_string(prhs[3], "the options");
    check(cv_dvid_create_repo(server, alias, desc, opts, &uuid));
    plhs[0] = mxCreateString(uuid);
    cv_string_free(uuid);
}

/* ---------------------------------------------------------------------------------------- */

typedef void (*command_fn)(int, mxArray *[], int, const mxArray *[]);

static const struct {
    const char *name;
    command_fn fn;
} commands[] = {
    {"open", cmd_open},
    {"create", cmd_create},
    {"free", cmd_free},
    {"meta", cmd_meta},
    {"info", cmd_info},
    {"cutout", cmd_cutout},
    {"write", cmd_write},
    {"points", cmd_points},
    {"exists", cmd_exists},
    {"delete_chunks", cmd_delete_chunks},
    {"add_scale", cmd_add_scale},
    {"new_info", cmd_new_info},
    {"file_exists", cmd_file_exists},
    {"unique", cmd_unique},
    {"label_mask", cmd_label_mask},
    {"point_box", cmd_point_box},
    {"renumber", cmd_renumber},
    {"download_files", cmd_download_files},
    {"aligned_grid", cmd_aligned_grid},
    {"aligned_cutout", cmd_aligned_cutout},
    {"split_masks", cmd_split_masks},
    {"segment_color", cmd_segment_color},
    {"overlay_rgb", cmd_overlay_rgb},
    {"overlay_png", cmd_overlay_png},
    {"dvid_create_repo", cmd_dvid_create_repo},
    {"mesh_get", cmd_mesh_get},
    {"mesh_get_each", cmd_mesh_get_each},
    {"mesh_save", cmd_mesh_save},
    {"mesh_lods", cmd_mesh_lods},
    {"mesh_put", cmd_mesh_put},
    {"mesh_info", cmd_mesh_info},
    {"skeleton_get", cmd_skeleton_get},
    {"skeleton_get_each", cmd_skeleton_get_each},
    {"skeleton_save", cmd_skeleton_save},
    {"skeleton_put", cmd_skeleton_put},
    {"skeleton_info", cmd_skeleton_info},
};

void mexFunction(int nlhs, mxArray *plhs[], int nrhs, const mxArray *prhs[]) {
    char cmd[32];
    size_t i;
    if (nrhs < 1 || !mxIsChar(prhs[0]) || mxGetNumberOfElements(prhs[0]) >= sizeof cmd ||
        mxGetString(prhs[0], cmd, sizeof cmd) != 0)
        fail_arg("the first argument of cloudvolume_mex must be a command name");
    if (nlhs > 1) fail_arg("cloudvolume_mex(%s): one output at most", cmd);
    if (strcmp(cmd, "version") == 0) {
        plhs[0] = mxCreateString(cv_version());
        return;
    }
    if (strcmp(cmd, "live") == 0) {
        plhs[0] = mxCreateDoubleScalar((double)reg_len);
        return;
    }
    if (strcmp(cmd, "locked") == 0) {
        plhs[0] = mxCreateLogicalScalar(mexIsLocked() ? 1 : 0);
        return;
    }
    release_held();
    for (i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(cmd, commands[i].name) == 0) {
            commands[i].fn(nlhs, plhs, nrhs - 1, prhs + 1);
            return;
        }
    }
    fail_arg("cloudvolume_mex has no command '%s'", cmd);
}
