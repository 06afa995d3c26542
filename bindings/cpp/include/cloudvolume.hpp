// cloudvolume.hpp: a header-only C++17 wrapper over the C ABI of include/cloudvolume.h.
//
// Nothing here knows about Rust: every call goes through a `cv_*` function of cloudvolume.h.
//
//   cloudvolume::Volume vol = cloudvolume::Volume::open("gs://bucket/em/image",
//                                                       cloudvolume::Options().fill_missing(true));
//   cloudvolume::Box box{{1000, 2000, 100}, {1512, 2512, 164}};       // half-open, absolute voxels
//   cloudvolume::Array<std::uint8_t> img = vol.cutout<std::uint8_t>(0, box);   // Fortran order
//   std::uint8_t v = img(10, 20, 30);                                    // x, y, z relative to box.lo
//
// Ownership: `Volume` is move-only and owns its `cv_volume *` (released by `cv_free` in the
// destructor). `Array<T>` owns its elements. Errors: every failing call throws a subclass of
// `cloudvolume::Error` (itself a `std::runtime_error`) carrying the `cv_status` code and the
// library's message (`cv_last_error()`, copied at once). Thread safety: the `const` methods of
// one `Volume` may run on many threads at once (the handle is thread-safe); `add_scale`,
// `close`, moves and destruction need exclusive access.
//
// Memory orders. The C ABI's native order is Fortran: x fastest, then y, z, channel (the order of
// Julia, MATLAB, ITK buffers and cloud-volume's numpy arrays). `Order::C` is the transposed
// layout a C++ `arr[x][y][z][c]` has (channel fastest); it is filled by the strided call
// `cv_cutout_into_strided`, which also writes into a sub-view of a larger array; see
// `Volume::cutout_into` with `Strides`. `Order::CXYZ` is Fortran order with the channel axis
// first, `[c, x, y, z]` (channel fastest, then x, y, z: the `cxyz` volumes pydvid returned, a
// 4-channel DVID rgba8blk instance's voxels as RGBA quadruples); `Volume::cutout_cxyz` reads it.
//
// Services: DVID data instances (`dvid://HOST:PORT/UUID/DATA`; `dvid_create_repo` makes a repo,
// `Volume::create` an instance) and BOSS channels (`boss://COLLECTION/EXPERIMENT/CHANNEL`,
// `boss://http(s)://HOST/...`) open, read and write as any layer.
//
// Meshes and skeletons: `Volume::mesh` / `meshes_each` / `save_mesh` / `put_mesh` (legacy and
// multi-resolution Draco meshes, sharded or not) and `Volume::skeleton` / `skeletons` /
// `save_skeleton` / `put_skeleton` give and take plain `Mesh` / `Skeleton` values (vectors of
// float32 triples and uint32 index tuples; skeleton vertex attributes as typed bytes).
#ifndef CLOUDVOLUME_HPP
#define CLOUDVOLUME_HPP

#if !defined(__cplusplus) || (__cplusplus < 201703L && (!defined(_MSVC_LANG) || _MSVC_LANG < 201703L))
#error "cloudvolume.hpp needs C++17 or later"
#endif

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "cloudvolume.hpp hands out the library's little-endian elements as typed values: little-endian hosts only"
#endif

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <locale>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "cloudvolume.h"

namespace cloudvolume {

/// Three voxel coordinates or extents, x, y, z.
using Vec3i = std::array<std::int64_t, 3>;
/// Three doubles (resolutions in nanometres), x, y, z.
using Vec3d = std::array<double, 3>;
/// Distances between neighbouring elements along x, y, z and channel. In elements for the
/// typed calls, in bytes for `cutout_into_bytes`.
using Strides = std::array<std::int64_t, 4>;

// ------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------

/// The name of a status code ("CV_OK", "CV_ERR_NOT_FOUND", ...; "CV_ERR_UNKNOWN" otherwise).
inline const char *status_name(cv_status code) noexcept {
    switch (code) {
        case CV_OK: return "CV_OK";
        case CV_ERR_INVALID_ARGUMENT: return "CV_ERR_INVALID_ARGUMENT";
        case CV_ERR_OUT_OF_BOUNDS: return "CV_ERR_OUT_OF_BOUNDS";
        case CV_ERR_NOT_FOUND: return "CV_ERR_NOT_FOUND";
        case CV_ERR_IO: return "CV_ERR_IO";
        case CV_ERR_AUTH: return "CV_ERR_AUTH";
        case CV_ERR_DECODE: return "CV_ERR_DECODE";
        case CV_ERR_UNSUPPORTED: return "CV_ERR_UNSUPPORTED";
        case CV_ERR_INTERNAL: return "CV_ERR_INTERNAL";
        default: return "CV_ERR_UNKNOWN";
    }
}

/// A failed call: the status code and the library's message (what failed: URL, chunk key, box,
/// sizes). Catch this for every error of the library; the subclasses name the code.
class Error : public std::runtime_error {
public:
    Error(cv_status code, const std::string &message) : std::runtime_error(message), code_(code) {}
    /// The `cv_status` of the failed call (`CV_ERR_*`).
    cv_status code() const noexcept { return code_; }
    /// The name of `code()`, e.g. "CV_ERR_NOT_FOUND".
    const char *code_name() const noexcept { return status_name(code_); }

private:
    cv_status code_;
};

/// CV_ERR_INVALID_ARGUMENT: a bad box, a wrong buffer length or layout, a bad option, an unknown mip.
class InvalidArgument : public Error {
public:
    explicit InvalidArgument(const std::string &m) : Error(CV_ERR_INVALID_ARGUMENT, m) {}
};
/// CV_ERR_OUT_OF_BOUNDS: a box outside the volume while the handle is `bounded`.
class OutOfBounds : public Error {
public:
    explicit OutOfBounds(const std::string &m) : Error(CV_ERR_OUT_OF_BOUNDS, m) {}
};
/// CV_ERR_NOT_FOUND: a layer, info or chunk that does not exist.
class NotFound : public Error {
public:
    explicit NotFound(const std::string &m) : Error(CV_ERR_NOT_FOUND, m) {}
};
/// CV_ERR_IO: an I/O or network failure, after retries.
class IoError : public Error {
public:
    explicit IoError(const std::string &m) : Error(CV_ERR_IO, m) {}
};
/// CV_ERR_AUTH: credentials refused.
class AuthError : public Error {
public:
    explicit AuthError(const std::string &m) : Error(CV_ERR_AUTH, m) {}
};
/// CV_ERR_DECODE: corrupt data (an info, chunk or shard index).
class DecodeError : public Error {
public:
    explicit DecodeError(const std::string &m) : Error(CV_ERR_DECODE, m) {}
};
/// CV_ERR_UNSUPPORTED: a feature the library does not implement.
class Unsupported : public Error {
public:
    explicit Unsupported(const std::string &m) : Error(CV_ERR_UNSUPPORTED, m) {}
};
/// CV_ERR_INTERNAL: a bug inside the library (a caught panic).
class InternalError : public Error {
public:
    explicit InternalError(const std::string &m) : Error(CV_ERR_INTERNAL, m) {}
};
/// The element type `T` of a typed call differs from the layer's data type (code
/// CV_ERR_INVALID_ARGUMENT; raised by this wrapper before any I/O).
class TypeMismatch : public InvalidArgument {
public:
    explicit TypeMismatch(const std::string &m) : InvalidArgument(m) {}
};

namespace detail {

/// Throw the exception class of `code` with `message`.
[[noreturn]] inline void throw_status(cv_status code, const std::string &message) {
    switch (code) {
        case CV_ERR_INVALID_ARGUMENT: throw InvalidArgument(message);
        case CV_ERR_OUT_OF_BOUNDS: throw OutOfBounds(message);
        case CV_ERR_NOT_FOUND: throw NotFound(message);
        case CV_ERR_IO: throw IoError(message);
        case CV_ERR_AUTH: throw AuthError(message);
        case CV_ERR_DECODE: throw DecodeError(message);
        case CV_ERR_UNSUPPORTED: throw Unsupported(message);
        case CV_ERR_INTERNAL: throw InternalError(message);
        default: throw Error(code, message);
    }
}

/// Throw unless `st` is CV_OK, with this thread's last error (copied before anything else runs).
inline void check(cv_status st, const char *call) {
    if (st == CV_OK) return;
    const char *m = cv_last_error();
    std::string message = (m != nullptr && m[0] != '\0')
                              ? std::string(m)
                              : std::string(call) + " failed with status " + std::to_string(st) + " (" +
                                    status_name(st) + ") and no message";
    throw_status(st, message);
}

inline std::string vec_str(const Vec3i &v) {
    return "(" + std::to_string(v[0]) + ", " + std::to_string(v[1]) + ", " + std::to_string(v[2]) + ")";
}

/// a * b, or InvalidArgument naming `what` when it overflows size_t.
inline std::size_t mul(std::size_t a, std::size_t b, const char *what) {
    if (a != 0 && b > std::numeric_limits<std::size_t>::max() / a)
        throw InvalidArgument(std::string(what) + ": size overflows size_t");
    return a * b;
}

/// JSON text of a string (quoted, escaped).
inline std::string json_string(const std::string &s) {
    std::string out = "\"";
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        switch (ch) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(c));
                    out += buf;
                } else {
                    out += ch;
                }
        }
    }
    return out + "\"";
}

/// JSON text of a finite number (integral values without a fraction; "C" locale always).
inline std::string json_number(double v, const char *key) {
    if (!std::isfinite(v)) throw InvalidArgument(std::string("option \"") + key + "\" must be a finite number");
    if (std::floor(v) == v && std::fabs(v) < 9007199254740992.0)
        return std::to_string(static_cast<long long>(v));
    std::ostringstream os;
    os.imbue(std::locale::classic());
    os.precision(17);
    os << v;
    return os.str();
}

template <class T> struct dtype_of;  // the CV_DTYPE_* code of an element type; none for others
template <> struct dtype_of<std::uint8_t> : std::integral_constant<std::int32_t, CV_DTYPE_UINT8> {};
template <> struct dtype_of<std::int8_t> : std::integral_constant<std::int32_t, CV_DTYPE_INT8> {};
template <> struct dtype_of<std::uint16_t> : std::integral_constant<std::int32_t, CV_DTYPE_UINT16> {};
template <> struct dtype_of<std::int16_t> : std::integral_constant<std::int32_t, CV_DTYPE_INT16> {};
template <> struct dtype_of<std::uint32_t> : std::integral_constant<std::int32_t, CV_DTYPE_UINT32> {};
template <> struct dtype_of<std::int32_t> : std::integral_constant<std::int32_t, CV_DTYPE_INT32> {};
template <> struct dtype_of<std::uint64_t> : std::integral_constant<std::int32_t, CV_DTYPE_UINT64> {};
template <> struct dtype_of<std::int64_t> : std::integral_constant<std::int32_t, CV_DTYPE_INT64> {};
template <> struct dtype_of<float> : std::integral_constant<std::int32_t, CV_DTYPE_FLOAT32> {};
template <> struct dtype_of<double> : std::integral_constant<std::int32_t, CV_DTYPE_FLOAT64> {};

/// Owners of what the label calls hand out: released with the length the library gave.
struct LabelArray {
    std::uint64_t *p = nullptr;
    std::size_t n = 0;
    LabelArray() = default;
    LabelArray(const LabelArray &) = delete;
    LabelArray &operator=(const LabelArray &) = delete;
    ~LabelArray() { cv_labels_free(p, n); }
    std::vector<std::uint64_t> copy() const {
        return p != nullptr ? std::vector<std::uint64_t>(p, p + n) : std::vector<std::uint64_t>();
    }
};
struct ByteArray {
    std::uint8_t *p = nullptr;
    std::size_t n = 0;
    ByteArray() = default;
    ByteArray(const ByteArray &) = delete;
    ByteArray &operator=(const ByteArray &) = delete;
    ~ByteArray() { cv_bytes_free(p, n); }
    std::vector<std::uint8_t> copy() const {
        return p != nullptr ? std::vector<std::uint8_t>(p, p + n) : std::vector<std::uint8_t>();
    }
};
struct FilesDeleter {
    void operator()(cv_files *f) const noexcept { cv_files_free(f); }
};

template <class C> struct is_array : std::false_type {};  // cloudvolume::Array (specialised below)

/// A contiguous container (data() and size()), except Array, whose order and box matter.
template <class C, class = void> struct is_container : std::false_type {};
template <class C>
struct is_container<C, std::void_t<decltype(std::declval<C &>().data()), decltype(std::declval<C &>().size())>>
    : std::bool_constant<std::is_pointer_v<decltype(std::declval<C &>().data())> &&
                         !is_array<std::remove_cv_t<C>>::value> {};

}  // namespace detail

// ------------------------------------------------------------------------------------------
// Element types, encodings, boxes
// ------------------------------------------------------------------------------------------

/// The element type of a layer (the values of `CV_DTYPE_*`).
enum class DataType : std::int32_t {
    uint8 = CV_DTYPE_UINT8,
    int8 = CV_DTYPE_INT8,
    uint16 = CV_DTYPE_UINT16,
    int16 = CV_DTYPE_INT16,
    uint32 = CV_DTYPE_UINT32,
    int32 = CV_DTYPE_INT32,
    uint64 = CV_DTYPE_UINT64,
    int64 = CV_DTYPE_INT64,
    float32 = CV_DTYPE_FLOAT32,
    float64 = CV_DTYPE_FLOAT64,
};

/// The info name of a data type ("uint8", ...; "" for a value outside the enumeration).
inline const char *name(DataType t) noexcept { return cv_dtype_name(static_cast<std::int32_t>(t)); }
/// Bytes per element (0 for a value outside the enumeration).
inline std::size_t size_of(DataType t) noexcept { return cv_dtype_size(static_cast<std::int32_t>(t)); }

/// The `DataType` of a C++ element type: std::uint8_t ... std::int64_t, float, double.
template <class T> inline constexpr DataType data_type_of = static_cast<DataType>(detail::dtype_of<T>::value);

/// The chunk encoding of a scale (the values of `CV_ENCODING_*`).
enum class Encoding : std::int32_t {
    raw = CV_ENCODING_RAW,
    jpeg = CV_ENCODING_JPEG,
    png = CV_ENCODING_PNG,
    compressed_segmentation = CV_ENCODING_COMPRESSED_SEGMENTATION,
    compresso = CV_ENCODING_COMPRESSO,
    jxl = CV_ENCODING_JXL,
    other = CV_ENCODING_OTHER,  ///< an encoding the library does not know: reads of that mip fail
};

/// The info name of an encoding ("raw", "jpeg", ...).
inline const char *name(Encoding e) noexcept {
    switch (e) {
        case Encoding::raw: return "raw";
        case Encoding::jpeg: return "jpeg";
        case Encoding::png: return "png";
        case Encoding::compressed_segmentation: return "compressed_segmentation";
        case Encoding::compresso: return "compresso";
        case Encoding::jxl: return "jxl";
        case Encoding::other: return "other";
    }
    return "";
}

/// A half-open box `[lo, hi)` in absolute voxel coordinates of a mip (voxel_offset included).
struct Box {
    Vec3i lo{};
    Vec3i hi{};

    /// Extents `hi - lo` per axis (negative or zero for an invalid box).
    Vec3i shape() const noexcept { return {hi[0] - lo[0], hi[1] - lo[1], hi[2] - lo[2]}; }
    /// Number of voxels (0 unless every extent is positive).
    std::int64_t voxels() const noexcept {
        const Vec3i s = shape();
        return (s[0] > 0 && s[1] > 0 && s[2] > 0) ? s[0] * s[1] * s[2] : 0;
    }
    bool operator==(const Box &o) const noexcept { return lo == o.lo && hi == o.hi; }
    bool operator!=(const Box &o) const noexcept { return !(*this == o); }
    /// "[x0, y0, z0) .. (x1, y1, z1)" for messages.
    std::string str() const { return "[" + detail::vec_str(lo) + " .. " + detail::vec_str(hi) + ")"; }
};

/// The layout of an `Array`: `F` (Fortran: x fastest, then y, z, channel; the library's native
/// order), `C` (row-major `[x][y][z][c]`: channel fastest, then z, y, x) or `CXYZ` (Fortran with
/// the channel first, `[c, x, y, z]`: channel fastest, then x, y, z; pydvid's `cxyz` volumes).
/// With one channel `CXYZ` lays the elements out as `F` does.
enum class Order { F, C, CXYZ };

/// Element strides of a dense array of `shape` voxels and `channels` channels in `order`.
inline Strides dense_strides(const Vec3i &shape, std::int64_t channels, Order order) noexcept {
    if (order == Order::F) return {1, shape[0], shape[0] * shape[1], shape[0] * shape[1] * shape[2]};
    if (order == Order::CXYZ) return {channels, channels * shape[0], channels * shape[0] * shape[1], 1};
    return {shape[1] * shape[2] * channels, shape[2] * channels, channels, 1};
}

// ------------------------------------------------------------------------------------------
// Array
// ------------------------------------------------------------------------------------------

/// An owning 4-d array of voxels (x, y, z, channel) covering `box()`, in `order()`.
/// Index with `a(x, y, z, c)`, coordinates relative to `box().lo`.
template <class T> class Array {
    static_assert(std::is_arithmetic_v<T>, "Array<T> holds the element types of Precomputed layers");

public:
    using value_type = T;

    Array() = default;
    /// A zero-filled array over `box` with `channels` channels.
    Array(const Box &box, std::size_t channels, Order order = Order::F)
        : box_(box), channels_(channels), order_(order) {
        const Vec3i s = box.shape();
        if (s[0] <= 0 || s[1] <= 0 || s[2] <= 0) throw InvalidArgument("Array: empty or inverted box " + box.str());
        if (channels == 0) throw InvalidArgument("Array: 0 channels");
        std::size_t n = detail::mul(static_cast<std::size_t>(s[0]), static_cast<std::size_t>(s[1]), "Array");
        n = detail::mul(n, static_cast<std::size_t>(s[2]), "Array");
        n = detail::mul(n, channels, "Array");
        data_.assign(n, T{});
    }

    const Box &box() const noexcept { return box_; }
    /// Voxel extents x, y, z.
    Vec3i shape() const noexcept { return box_.shape(); }
    std::size_t channels() const noexcept { return channels_; }
    Order order() const noexcept { return order_; }
    /// Element strides along x, y, z, channel.
    Strides strides() const noexcept {
        return dense_strides(shape(), static_cast<std::int64_t>(channels_), order_);
    }

    T *data() noexcept { return data_.data(); }
    const T *data() const noexcept { return data_.data(); }
    /// Number of elements (voxels x channels).
    std::size_t size() const noexcept { return data_.size(); }
    bool empty() const noexcept { return data_.empty(); }
    T *begin() noexcept { return data_.data(); }
    T *end() noexcept { return data_.data() + data_.size(); }
    const T *begin() const noexcept { return data_.data(); }
    const T *end() const noexcept { return data_.data() + data_.size(); }

    /// The element at (x, y, z, c) relative to `box().lo`; unchecked.
    T &operator()(std::size_t x, std::size_t y, std::size_t z, std::size_t c = 0) noexcept {
        return data_[offset(x, y, z, c)];
    }
    const T &operator()(std::size_t x, std::size_t y, std::size_t z, std::size_t c = 0) const noexcept {
        return data_[offset(x, y, z, c)];
    }
    /// As operator(), but throws std::out_of_range outside the array.
    T &at(std::size_t x, std::size_t y, std::size_t z, std::size_t c = 0) { return data_[checked(x, y, z, c)]; }
    const T &at(std::size_t x, std::size_t y, std::size_t z, std::size_t c = 0) const {
        return data_[checked(x, y, z, c)];
    }

    /// A copy in `order` (the same array when it already is).
    Array to_order(Order order) const {
        if (order == order_) return *this;
        Array out;
        out.box_ = box_;
        out.channels_ = channels_;
        out.order_ = order;
        out.data_.resize(data_.size());
        const Vec3i s = shape();
        for (std::size_t c = 0; c < channels_; c++)
            for (std::int64_t z = 0; z < s[2]; z++)
                for (std::int64_t y = 0; y < s[1]; y++)
                    for (std::int64_t x = 0; x < s[0]; x++) {
                        const auto xu = static_cast<std::size_t>(x), yu = static_cast<std::size_t>(y),
                                   zu = static_cast<std::size_t>(z);
                        out(xu, yu, zu, c) = (*this)(xu, yu, zu, c);
                    }
        return out;
    }

    /// Move the elements out (the array is left empty).
    std::vector<T> release() noexcept {
        std::vector<T> v = std::move(data_);
        data_.clear();
        return v;
    }

private:
    friend class Volume;

    std::size_t offset(std::size_t x, std::size_t y, std::size_t z, std::size_t c) const noexcept {
        const Vec3i s = shape();
        const auto sx = static_cast<std::size_t>(s[0]), sy = static_cast<std::size_t>(s[1]),
                   sz = static_cast<std::size_t>(s[2]);
        if (order_ == Order::F) return x + sx * (y + sy * (z + sz * c));
        if (order_ == Order::CXYZ) return c + channels_ * (x + sx * (y + sy * z));
        return c + channels_ * (z + sz * (y + sy * x));
    }
    std::size_t checked(std::size_t x, std::size_t y, std::size_t z, std::size_t c) const {
        const Vec3i s = shape();
        if (x >= static_cast<std::size_t>(s[0]) || y >= static_cast<std::size_t>(s[1]) ||
            z >= static_cast<std::size_t>(s[2]) || c >= channels_)
            throw std::out_of_range("cloudvolume::Array::at(" + std::to_string(x) + ", " + std::to_string(y) + ", " +
                                    std::to_string(z) + ", " + std::to_string(c) + ") outside shape " +
                                    detail::vec_str(s) + " x " + std::to_string(channels_) + " channels");
        return offset(x, y, z, c);
    }

    Box box_{};
    std::size_t channels_ = 0;
    Order order_ = Order::F;
    std::vector<T> data_;
};

namespace detail {
template <class T> struct is_array<Array<T>> : std::true_type {};
}  // namespace detail

// ------------------------------------------------------------------------------------------
// Options
// ------------------------------------------------------------------------------------------

/// Compression of written chunks (option `compress`).
enum class Compression {
    automatic,  ///< null: cloud-volume's default (gzip on object stores and HTTP, plain files on file://)
    none,       ///< false
    gzip,       ///< "gzip" (`.gz` files on file://)
    zstd,       ///< "zstd"
};

/// The cutout body an OCP / ndstore project is asked for (option `ocp_format`).
enum class OcpFormat {
    npz,   ///< "npz": zlib over a .npy file (the default)
    raw,   ///< "raw": the array's bytes
    hdf5,  ///< "hdf5": an HDF5 file (read without libhdf5)
};

/// Typed options of `Volume::open` / `Volume::create` (the JSON object `options_json` of
/// `cv_open`). Unset members keep the library's defaults. Setters chain:
/// `Options().bounded(false).background_color(7)`.
class Options {
public:
    Options &mip(std::uint32_t v) { return set("mip", std::to_string(v)); }
    Options &bounded(bool v) { return set("bounded", v ? "true" : "false"); }
    Options &fill_missing(bool v) { return set("fill_missing", v ? "true" : "false"); }
    /// Value of missing and outside voxels.
    template <class N, class = std::enable_if_t<std::is_arithmetic_v<N> && !std::is_same_v<N, bool>>>
    Options &background_color(N v) {
        if constexpr (std::is_integral_v<N>)
            return set("background_color", std::to_string(v));
        else
            return set("background_color", detail::json_number(static_cast<double>(v), "background_color"));
    }
    /// Requests in flight at most (1..=1024): chunk reads, and writes, indices, service tiles.
    Options &parallel(std::uint32_t v) { return set("parallel", std::to_string(v)); }
    /// Bytes of fetched bodies held at once (65536..=2^40; default 32 MiB): how many chunk
    /// reads are out within `parallel`.
    Options &max_inflight_bytes(std::uint64_t v) { return set("max_inflight_bytes", std::to_string(v)); }
    /// cloud-volume's disk cache (network paths): `true` uses `$CLOUD_VOLUME_CACHE_DIR`, else
    /// `$CLOUD_VOLUME_DIR/cache`.
    Options &cache(bool v) { return set("cache", v ? "true" : "false"); }
    /// The disk cache in the directory `dir`.
    Options &cache_dir(const std::string &dir) { return set("cache", detail::json_string(dir)); }
    /// Bytes of fetched chunks kept in memory (0: off).
    Options &lru_bytes(std::uint64_t v) { return set("lru_bytes", std::to_string(v)); }
    Options &gs_endpoint(const std::string &url) { return set("gs_endpoint", detail::json_string(url)); }
    Options &s3_endpoint(const std::string &url) { return set("s3_endpoint", detail::json_string(url)); }
    /// Credentials from a JSON file (google-secret.json's or aws-secret.json's members).
    Options &secrets_file(const std::string &path) { return set("secrets", detail::json_string(path)); }
    /// Credentials given as a JSON object's text.
    Options &secrets_json(const std::string &json_object) { return set("secrets", json_object); }
    /// An OAuth2 access token for gs://.
    Options &gs_token(const std::string &token) { return set("gs_token", detail::json_string(token)); }
    Options &s3_region(const std::string &region) { return set("s3_region", detail::json_string(region)); }
    /// Send no credentials (public buckets).
    Options &anonymous(bool v) { return set("anonymous", v ? "true" : "false"); }
    /// Seconds one HTTP request may take in all.
    Options &timeout(double seconds) { return set("timeout", detail::json_number(seconds, "timeout")); }
    /// Seconds to connect.
    Options &connect_timeout(double seconds) {
        return set("connect_timeout", detail::json_number(seconds, "connect_timeout"));
    }
    Options &max_attempts(std::uint32_t v) { return set("max_attempts", std::to_string(v)); }
    /// Seconds one request may spend retrying.
    Options &retry_budget(double seconds) { return set("retry_budget", detail::json_number(seconds, "retry_budget")); }
    /// Check the checksums GCS and S3 send.
    Options &checksum(bool v) { return set("checksum", v ? "true" : "false"); }
    Options &non_aligned_writes(bool v) { return set("non_aligned_writes", v ? "true" : "false"); }
    Options &compress(Compression c) {
        switch (c) {
            case Compression::none: return set("compress", "false");
            case Compression::gzip: return set("compress", "\"gzip\"");
            case Compression::zstd: return set("compress", "\"zstd\"");
            case Compression::automatic: break;
        }
        return set("compress", "null");
    }
    Options &compress_level(int v) { return set("compress_level", std::to_string(v)); }
    Options &delete_black_uploads(bool v) { return set("delete_black_uploads", v ? "true" : "false"); }
    /// `Volume::create` replaces an existing info.
    Options &overwrite(bool v) { return set("overwrite", v ? "true" : "false"); }
    /// Read gs:// and s3:// through their public HTTPS endpoints, unsigned.
    Options &use_https(bool v) { return set("use_https", v ? "true" : "false"); }
    /// graphene://: map supervoxels to roots (default true).
    Options &agglomerate(bool v) { return set("agglomerate", v ? "true" : "false"); }
    /// graphene://: the graph's state at this unix time (seconds).
    Options &timestamp(double unix_seconds) { return set("timestamp", detail::json_number(unix_seconds, "timestamp")); }
    /// graphene://: map to ancestors at this layer instead of roots.
    Options &stop_layer(std::uint32_t v) { return set("stop_layer", std::to_string(v)); }
    /// ocp://: the cutout body to request (writes always POST npz).
    Options &ocp_format(OcpFormat f) {
        return set("ocp_format", f == OcpFormat::raw ? "\"raw\"" : f == OcpFormat::hdf5 ? "\"hdf5\"" : "\"npz\"");
    }
    /// graphene://: the CAVE token itself (else cave-secret.json and friends are read).
    Options &cave_token(const std::string &token) { return set("secrets", detail::json_string(token)); }

    /// Any member, its value given as JSON text (for keys this header does not know yet). A key
    /// set twice keeps the last value. The library refuses unknown keys.
    Options &set(const std::string &key, const std::string &json_value) {
        for (auto &m : members_)
            if (m.first == key) {
                m.second = json_value;
                return *this;
            }
        members_.emplace_back(key, json_value);
        return *this;
    }

    bool empty() const noexcept { return members_.empty(); }
    /// The JSON object, members in the order first set.
    std::string to_json() const {
        std::string s = "{";
        for (std::size_t i = 0; i < members_.size(); i++) {
            if (i) s += ", ";
            s += detail::json_string(members_[i].first) + ": " + members_[i].second;
        }
        return s + "}";
    }

private:
    std::vector<std::pair<std::string, std::string>> members_;
};

/// A new one-scale layer's description for `new_info` (cloud-volume's `create_new_info`).
struct InfoSpec {
    std::string layer_type = "image";  ///< "image" or "segmentation"
    DataType data_type = DataType::uint8;
    std::string encoding = "raw";  ///< "raw", "jpeg", "png", "compressed_segmentation"
    std::uint32_t num_channels = 1;
    Vec3d resolution{1.0, 1.0, 1.0};  ///< nanometres
    Vec3i voxel_offset{0, 0, 0};
    Vec3i size{0, 0, 0};
    Vec3i chunk_size{64, 64, 64};
};

/// A valid info JSON for `spec` (through `cv_new_info`).
inline std::string new_info(const InfoSpec &spec) {
    char *out = nullptr;
    detail::check(cv_new_info(spec.layer_type.c_str(), name(spec.data_type), spec.encoding.c_str(), spec.num_channels,
                              spec.resolution.data(), spec.voxel_offset.data(), spec.size.data(),
                              spec.chunk_size.data(), &out),
                  "cv_new_info");
    std::unique_ptr<char, void (*)(char *)> guard(out, cv_string_free);
    return std::string(out);
}

/// The library's version at run time ("0.1.0").
inline std::string version() { return cv_version(); }

// ------------------------------------------------------------------------------------------
// Services
// ------------------------------------------------------------------------------------------

/// Create a repo on the DVID server `server` (`HOST:PORT`, `http(s)://HOST:PORT` or
/// `dvid://HOST:PORT`; `POST /api/repos`, as pydvid does before adding a data instance) and
/// return its root UUID (32 hex digits). Its instances are `dvid://HOST:PORT/<uuid>/<name>`:
/// `Volume::create` adds one (uint8/16/32/64/float32 image -> uint8blk ... float32blk, 4-channel
/// uint8 -> rgba8blk, uint64 segmentation -> labelmap; block size = the chunk size). `options`
/// as for `Volume::open` (a Bearer token in `secrets_json("\"TOKEN\"")`, timeouts, retries).
/// Errors: the server's refusal (InvalidArgument, AuthError), an unreachable server (IoError).
inline std::string dvid_create_repo(const std::string &server, const std::string &alias = std::string(),
                                    const std::string &description = std::string(),
                                    const Options &options = Options()) {
    const std::string opts = options.empty() ? std::string() : options.to_json();
    char *out = nullptr;
    const cv_status st = cv_dvid_create_repo(server.c_str(), alias.c_str(), description.c_str(),
                                             opts.empty() ? nullptr : opts.c_str(), &out);
    std::unique_ptr<char, void (*)(char *)> guard(out, cv_string_free);
    detail::check(st, "cv_dvid_create_repo");
    if (out == nullptr) throw InternalError("cv_dvid_create_repo: CV_OK without a UUID");
    return std::string(out);
}

// ------------------------------------------------------------------------------------------
// Meshes and skeletons
// ------------------------------------------------------------------------------------------
//
// Plain C++ values copied out of the library's `cv_mesh` / `cv_skeleton` results (the counts are
// asked first, then each array is copied into a buffer of exactly its size), so nothing here
// holds a handle: a Mesh or Skeleton outlives the Volume it came from.
//
//   cv::Mesh m = vol.mesh({3, 4}, cv::MeshOptions{1});           // lod 1 of segments 3 and 4, fused
//   std::vector<std::optional<cv::Mesh>> each = vol.meshes_each({3, 4, 5});
//   cv::Skeleton s = vol.skeleton(7);
//   std::vector<float> radius = s.attribute("radius")->values<float>();

/// A triangle mesh: vertices x, y, z (float32, physical nanometres) and triangles of three
/// vertex indices (from 0).
struct Mesh {
    std::vector<std::array<float, 3>> vertices;
    std::vector<std::array<std::uint32_t, 3>> faces;

    bool empty() const noexcept { return vertices.empty() && faces.empty(); }
    bool operator==(const Mesh &o) const noexcept { return vertices == o.vertices && faces == o.faces; }
    bool operator!=(const Mesh &o) const noexcept { return !(*this == o); }
};

/// How `Volume::mesh`, `meshes_each` and `save_mesh` read (`cv_mesh_get`'s arguments). An
/// aggregate: `MeshOptions{lod, weld, allow_missing, chunk_size}`.
struct MeshOptions {
    /// The value of `lod` that asks for the coarsest level of detail.
    static constexpr std::int32_t coarsest = -1;
    /// Level of detail: 0 the finest, `MeshOptions::coarsest` (-1) the coarsest (legacy meshes
    /// have only lod 0). A level the mesh lacks is InvalidArgument.
    std::int32_t lod = 0;
    /// Merge equal vertices (cloud-volume's `remove_duplicate_vertices`); absent: cloud-volume's
    /// default (legacy meshes welded, multi-resolution ones not).
    std::optional<bool> weld;
    /// Leave out segments without a mesh (`meshes_each`: a std::nullopt for each) instead of
    /// throwing NotFound.
    bool allow_missing = false;
    /// Weld legacy meshes only where cloud-volume's `chunk_size` does (pairs on the planes of
    /// that chunk grid, voxels at the meshes' mip).
    std::optional<Vec3i> chunk_size;
};

/// One vertex attribute of a skeleton ("radius", "vertex_types", ...): `components` values of
/// `data_type` per vertex, vertex after vertex, as little-endian bytes in `data`.
struct SkeletonAttribute {
    std::string name;
    DataType data_type = DataType::float32;
    std::uint32_t components = 1;
    std::vector<std::uint8_t> data;

    /// Number of vertices the values cover (data bytes / (components x element size)).
    std::size_t vertex_count() const noexcept {
        const std::size_t per = static_cast<std::size_t>(components) * size_of(data_type);
        return per == 0 ? 0 : data.size() / per;
    }
    /// The values as elements of `T`, which must be the attribute's type (TypeMismatch).
    template <class T> std::vector<T> values() const {
        static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>, "T must be an element type");
        if (data_type_of<T> != data_type)
            throw TypeMismatch(std::string("cloudvolume::SkeletonAttribute::values<") + name_of<T>() + ">: attribute \"" +
                               name + "\" is " + cloudvolume::name(data_type));
        std::vector<T> out(data.size() / sizeof(T));
        if (!out.empty()) std::memcpy(out.data(), data.data(), out.size() * sizeof(T));
        return out;
    }
    /// An attribute named `name` holding `values` (`components` per vertex).
    template <class T>
    static SkeletonAttribute of(const std::string &name, const std::vector<T> &values, std::uint32_t components = 1) {
        static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>, "T must be an element type");
        SkeletonAttribute a;
        a.name = name;
        a.data_type = data_type_of<T>;
        a.components = components;
        a.data.resize(values.size() * sizeof(T));
        if (!values.empty()) std::memcpy(a.data.data(), values.data(), a.data.size());
        return a;
    }

private:
    template <class T> static const char *name_of() { return cloudvolume::name(data_type_of<T>); }
};

/// A skeleton: vertices x, y, z (float32; physical when read: the skeleton info's transform
/// applied), edges of two vertex indices (from 0), and the vertex attributes of the skeleton
/// info, in its order.
struct Skeleton {
    std::vector<std::array<float, 3>> vertices;
    std::vector<std::array<std::uint32_t, 2>> edges;
    std::vector<SkeletonAttribute> attributes;

    /// The attribute named `name`, or nullptr.
    const SkeletonAttribute *attribute(const std::string &name) const noexcept {
        for (const SkeletonAttribute &a : attributes)
            if (a.name == name) return &a;
        return nullptr;
    }
    SkeletonAttribute *attribute(const std::string &name) noexcept {
        for (SkeletonAttribute &a : attributes)
            if (a.name == name) return &a;
        return nullptr;
    }
};

/// A vertex attribute the skeleton info declares (`Volume::skeleton_attributes`).
struct SkeletonAttributeInfo {
    std::string name;
    DataType data_type = DataType::float32;
    std::uint32_t components = 1;
};

namespace detail {

static_assert(sizeof(std::array<float, 3>) == 12 && sizeof(std::array<std::uint32_t, 3>) == 12 &&
                  sizeof(std::array<std::uint32_t, 2>) == 8,
              "cloudvolume.hpp copies vertices, faces and edges as packed triples and pairs");

struct MeshDeleter {
    void operator()(cv_mesh *m) const noexcept { cv_mesh_free(m); }
};
struct SkeletonDeleter {
    void operator()(cv_skeleton *s) const noexcept { cv_skeleton_free(s); }
};
using MeshPtr = std::unique_ptr<cv_mesh, MeshDeleter>;
using SkeletonPtr = std::unique_ptr<cv_skeleton, SkeletonDeleter>;

/// Copy a mesh out of the library: counts first, then each array with its exact length.
inline Mesh copy_mesh(const cv_mesh *m) {
    std::size_t nv = 0, nf = 0;
    check(cv_mesh_counts(m, &nv, &nf), "cv_mesh_counts");
    Mesh out;
    out.vertices.resize(nv);
    out.faces.resize(nf);
    check(cv_mesh_vertices_into(m, nv == 0 ? nullptr : out.vertices.front().data(), mul(nv, 12, "mesh vertices")),
          "cv_mesh_vertices_into");
    check(cv_mesh_faces_into(m, nf == 0 ? nullptr : out.faces.front().data(), mul(nf, 12, "mesh faces")),
          "cv_mesh_faces_into");
    return out;
}

/// Copy a skeleton out of the library: counts, vertices, edges, then each attribute.
inline Skeleton copy_skeleton(const cv_skeleton *s) {
    std::size_t nv = 0, ne = 0, na = 0;
    check(cv_skeleton_counts(s, &nv, &ne, &na), "cv_skeleton_counts");
    Skeleton out;
    out.vertices.resize(nv);
    out.edges.resize(ne);
    check(cv_skeleton_vertices_into(s, nv == 0 ? nullptr : out.vertices.front().data(),
                                    mul(nv, 12, "skeleton vertices")),
          "cv_skeleton_vertices_into");
    check(cv_skeleton_edges_into(s, ne == 0 ? nullptr : out.edges.front().data(), mul(ne, 8, "skeleton edges")),
          "cv_skeleton_edges_into");
    out.attributes.resize(na);
    for (std::size_t i = 0; i < na; i++) {
        const char *name = nullptr;
        std::int32_t dt = 0;
        std::uint32_t nc = 0;
        check(cv_skeleton_attribute(s, i, &name, &dt, &nc), "cv_skeleton_attribute");
        const std::size_t item = cv_dtype_size(dt);
        if (item == 0)
            throw InternalError("cv_skeleton_attribute: attribute " + std::to_string(i) + " has data type code " +
                                std::to_string(dt));
        SkeletonAttribute &a = out.attributes[i];
        a.name = name != nullptr ? std::string(name) : std::string();
        a.data_type = static_cast<DataType>(dt);
        a.components = nc;
        a.data.resize(mul(mul(nv, nc, "skeleton attribute"), item, "skeleton attribute"));
        check(cv_skeleton_attribute_into(s, i, a.data.empty() ? nullptr : a.data.data(), a.data.size()),
              "cv_skeleton_attribute_into");
    }
    return out;
}

/// The arguments of `cv_mesh_get` for `o`; `chunk` points into `o`, which must outlive the call.
struct MeshArgs {
    std::int32_t lod, weld, allow_missing;
    const std::int64_t *chunk;
    explicit MeshArgs(const MeshOptions &o)
        : lod(o.lod), weld(o.weld ? (*o.weld ? 1 : 0) : -1), allow_missing(o.allow_missing ? 1 : 0),
          chunk(o.chunk_size ? o.chunk_size->data() : nullptr) {}
};

/// The DataType whose info name is `n`; InternalError for a name the library does not know.
inline DataType data_type_named(const std::string &n) {
    for (std::int32_t c = CV_DTYPE_UINT8; c <= CV_DTYPE_FLOAT64; c++)
        if (n == cv_dtype_name(c)) return static_cast<DataType>(c);
    throw InternalError("cloudvolume: unknown data type name \"" + n + "\" in the skeleton info");
}

/// Just enough JSON to read the `vertex_attributes` of `cv_skeleton_info_json`'s text.
class InfoScanner {
public:
    explicit InfoScanner(const std::string &s) : s_(s) {}

    std::vector<SkeletonAttributeInfo> vertex_attributes() {
        std::vector<SkeletonAttributeInfo> out;
        expect('{');
        if (peek() == '}') return out;
        for (;;) {
            const std::string key = string();
            expect(':');
            if (key == "vertex_attributes" && peek() == '[') {
                attributes(out);
            } else {
                skip();
            }
            if (peek() == ',') {
                i_++;
                continue;
            }
            expect('}');
            return out;
        }
    }

private:
    [[noreturn]] void bad(const char *what) const {
        throw InternalError(std::string("cloudvolume: the skeleton info JSON: ") + what + " at offset " +
                            std::to_string(i_));
    }
    char peek() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) i_++;
        if (i_ >= s_.size()) bad("unexpected end");
        return s_[i_];
    }
    void expect(char c) {
        if (peek() != c) bad("unexpected character");
        i_++;
    }
    std::string string() {
        expect('"');
        std::string out;
        while (i_ < s_.size() && s_[i_] != '"') {
            char c = s_[i_++];
            if (c == '\\') {
                if (i_ >= s_.size()) bad("bad escape");
                c = s_[i_++];
                switch (c) {
                    case 'n': c = '\n'; break;
                    case 't': c = '\t'; break;
                    case 'r': c = '\r'; break;
                    case 'b': c = '\b'; break;
                    case 'f': c = '\f'; break;
                    case 'u': {
                        if (i_ + 4 > s_.size()) bad("bad \\u escape");
                        const unsigned cp = static_cast<unsigned>(std::stoul(s_.substr(i_, 4), nullptr, 16));
                        i_ += 4;
                        if (cp < 0x80) {
                            out += static_cast<char>(cp);
                        } else if (cp < 0x800) {
                            out += static_cast<char>(0xC0 | (cp >> 6));
                            out += static_cast<char>(0x80 | (cp & 0x3F));
                        } else {
                            out += static_cast<char>(0xE0 | (cp >> 12));
                            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
                            out += static_cast<char>(0x80 | (cp & 0x3F));
                        }
                        continue;
                    }
                    default: break;  // '"', '\\', '/'
                }
            }
            out += c;
        }
        if (i_ >= s_.size()) bad("unterminated string");
        i_++;
        return out;
    }
    std::string scalar() {  // a number, true, false or null, as its text
        peek();
        const std::size_t start = i_;
        while (i_ < s_.size() && std::strchr(",}] \n\r\t", s_[i_]) == nullptr) i_++;
        if (i_ == start) bad("expected a value");
        return s_.substr(start, i_ - start);
    }
    void skip() {
        const char c = peek();
        if (c == '"') {
            string();
        } else if (c == '{' || c == '[') {
            const char close = c == '{' ? '}' : ']';
            i_++;
            if (peek() == close) {
                i_++;
                return;
            }
            for (;;) {
                if (c == '{') {
                    string();
                    expect(':');
                }
                skip();
                if (peek() == ',') {
                    i_++;
                    continue;
                }
                expect(close);
                return;
            }
        } else {
            scalar();
        }
    }
    void attributes(std::vector<SkeletonAttributeInfo> &out) {
        expect('[');
        if (peek() == ']') {
            i_++;
            return;
        }
        for (;;) {
            SkeletonAttributeInfo a;
            expect('{');
            if (peek() != '}') {
                for (;;) {
                    const std::string key = string();
                    expect(':');
                    if (key == "id") {
                        a.name = string();
                    } else if (key == "data_type") {
                        a.data_type = data_type_named(string());
                    } else if (key == "num_components") {
                        const std::string n = scalar();
                        if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos)
                            bad("num_components is not a count");
                        a.components = static_cast<std::uint32_t>(std::stoul(n));
                    } else {
                        skip();
                    }
                    if (peek() == ',') {
                        i_++;
                        continue;
                    }
                    break;
                }
            }
            expect('}');
            out.push_back(std::move(a));
            if (peek() == ',') {
                i_++;
                continue;
            }
            expect(']');
            return;
        }
    }

    const std::string &s_;
    std::size_t i_ = 0;
};

}  // namespace detail

// ------------------------------------------------------------------------------------------
// Volume
// ------------------------------------------------------------------------------------------

/// An open Precomputed layer: a move-only owner of a `cv_volume *`.
class Volume {
public:
    /// Open the layer at `cloudpath` (`file://`, `http(s)://`, `gs://`, `s3://`, optionally
    /// behind `precomputed://`), or a service's: `graphene://`, `dvid://`, `boss://`.
    static Volume open(const std::string &cloudpath, const Options &options = Options()) {
        return open_json(cloudpath, options.empty() ? std::string() : options.to_json());
    }
    /// Open with options given as JSON text ("" for none).
    static Volume open_json(const std::string &cloudpath, const std::string &options_json) {
        cv_volume *h = nullptr;
        detail::check(cv_open(cloudpath.c_str(), options_json.empty() ? nullptr : options_json.c_str(), &h), "cv_open");
        return Volume(h);
    }
    /// Create a layer at `cloudpath` from `info_json` (see `new_info`) and open it. An existing
    /// info is refused unless `options` has `overwrite(true)`.
    static Volume create(const std::string &cloudpath, const std::string &info_json,
                         const Options &options = Options()) {
        cv_volume *h = nullptr;
        const std::string opts = options.empty() ? std::string() : options.to_json();
        detail::check(cv_create(cloudpath.c_str(), info_json.c_str(), opts.empty() ? nullptr : opts.c_str(), &h),
                      "cv_create");
        return Volume(h);
    }

    /// Take ownership of a handle from `cv_open` / `cv_create` (NULL gives an empty Volume).
    explicit Volume(cv_volume *adopt) noexcept : h_(adopt) {}
    Volume() noexcept = default;
    Volume(Volume &&) noexcept = default;
    Volume &operator=(Volume &&) noexcept = default;
    Volume(const Volume &) = delete;
    Volume &operator=(const Volume &) = delete;
    ~Volume() = default;

    /// Whether this owns a handle (false after a move or `close()`).
    explicit operator bool() const noexcept { return h_ != nullptr; }
    /// Release the handle now (a no-op on an empty Volume).
    void close() noexcept { h_.reset(); }
    /// The C handle, for calls this header does not wrap; still owned by this Volume.
    const cv_volume *capi() const noexcept { return h_.get(); }
    cv_volume *capi() noexcept { return h_.get(); }
    /// Give up ownership: the caller must `cv_free` the result.
    cv_volume *release() noexcept { return h_.release(); }

    // ---- metadata -------------------------------------------------------------------------

    DataType data_type() const {
        std::int32_t t = 0;
        detail::check(cv_data_type(handle("data_type"), &t), "cv_data_type");
        return static_cast<DataType>(t);
    }
    /// Bytes per element.
    std::size_t item_size() const { return size_of(data_type()); }
    std::uint32_t num_channels() const {
        std::uint32_t n = 0;
        detail::check(cv_num_channels(handle("num_channels"), &n), "cv_num_channels");
        return n;
    }
    std::uint32_t num_mips() const {
        std::uint32_t n = 0;
        detail::check(cv_num_mips(handle("num_mips"), &n), "cv_num_mips");
        return n;
    }
    /// The `mip` option the handle was opened with (0 by default).
    std::uint32_t default_mip() const {
        std::uint32_t n = 0;
        detail::check(cv_default_mip(handle("default_mip"), &n), "cv_default_mip");
        return n;
    }
    /// `[voxel_offset, voxel_offset + size)` of `mip`.
    Box bounds(std::uint32_t mip) const {
        Box b;
        detail::check(cv_bounds(handle("bounds"), mip, b.lo.data(), b.hi.data()), "cv_bounds");
        return b;
    }
    Vec3i chunk_size(std::uint32_t mip) const {
        Vec3i c{};
        detail::check(cv_chunk_size(handle("chunk_size"), mip, c.data()), "cv_chunk_size");
        return c;
    }
    /// Nanometres per voxel at `mip`.
    Vec3d resolution(std::uint32_t mip) const {
        Vec3d r{};
        detail::check(cv_resolution(handle("resolution"), mip, r.data()), "cv_resolution");
        return r;
    }
    Encoding encoding(std::uint32_t mip) const {
        std::int32_t e = 0;
        detail::check(cv_encoding(handle("encoding"), mip, &e), "cv_encoding");
        return static_cast<Encoding>(e);
    }
    /// The layer's info JSON, every member (known or not).
    std::string info_json() const {
        char *s = nullptr;
        detail::check(cv_info_json(handle("info_json"), &s), "cv_info_json");
        std::unique_ptr<char, void (*)(char *)> guard(s, cv_string_free);
        return std::string(s);
    }
    /// Bytes a dense cutout of `box` takes (voxels x channels x element size).
    std::size_t cutout_len(const Box &box) const {
        std::size_t n = 0;
        detail::check(cv_cutout_len(handle("cutout_len"), box.lo.data(), box.hi.data(), &n), "cv_cutout_len");
        return n;
    }

    // ---- reads ----------------------------------------------------------------------------

    /// Read `box` at `mip` into a new array in `order`. `T` must be the layer's element type
    /// (TypeMismatch otherwise).
    template <class T> Array<T> cutout(std::uint32_t mip, const Box &box, Order order = Order::F) const {
        check_type<T>("cutout");
        const std::size_t len = cutout_len(box);
        Array<T> a;
        a.box_ = box;
        a.channels_ = num_channels();
        a.order_ = order;
        a.data_.resize(len / sizeof(T));
        if (order == Order::F)
            read_dense(mip, box, a.data_.data(), len);
        else
            read_strided(mip, box, a.data_.data(), len, bytes_of<T>(a.strides()));
        return a;
    }
    /// `cutout` channel first: an `Order::CXYZ` array, element (c, x, y, z) at
    /// `c + channels * (x + sx * (y + sy * z))` (pydvid's `cxyz` volumes; `a(x, y, z, c)` indexes
    /// it as every Array). Filled in place by the strided read, no transposed copy.
    template <class T> Array<T> cutout_cxyz(std::uint32_t mip, const Box &box) const {
        return cutout<T>(mip, box, Order::CXYZ);
    }

    /// Read `box` at `mip` into `count` elements at `data`, dense in Fortran order: `count`
    /// must be exactly voxels x channels.
    template <class T> void cutout_into(std::uint32_t mip, const Box &box, T *data, std::size_t count) const {
        check_type<T>("cutout_into");
        read_dense(mip, box, data, detail::mul(count, sizeof(T), "cutout_into"));
    }
    /// Read `box` at `mip` into the strided view at `data`: element (x, y, z, c) of the box goes
    /// to `data[x*strides[0] + y*strides[1] + z*strides[2] + c*strides[3]]` (element strides, all
    /// > 0, no two elements overlapping). `count` is the number of elements the caller owns from
    /// `data` on; every element written must lie inside it. `dense_strides(shape, channels,
    /// Order::C)` gives a row-major `[x][y][z][c]` block; the strides of a larger array with
    /// `data` pointing at the sub-view's first element write into that sub-view.
    template <class T>
    void cutout_into(std::uint32_t mip, const Box &box, T *data, std::size_t count, const Strides &strides) const {
        check_type<T>("cutout_into");
        read_strided(mip, box, data, detail::mul(count, sizeof(T), "cutout_into"), bytes_of<T>(strides));
    }
    /// `cutout_into` over a contiguous container (std::vector, std::array, std::span, ...).
    template <class C, class = std::enable_if_t<detail::is_container<C>::value>>
    void cutout_into(std::uint32_t mip, const Box &box, C &out) const {
        cutout_into(mip, box, out.data(), static_cast<std::size_t>(out.size()));
    }
    template <class C, class = std::enable_if_t<detail::is_container<C>::value>>
    void cutout_into(std::uint32_t mip, const Box &box, C &out, const Strides &strides) const {
        cutout_into(mip, box, out.data(), static_cast<std::size_t>(out.size()), strides);
    }
    /// Read `a.box()` at `mip` into an existing array, in the array's order.
    template <class T> void cutout_into(std::uint32_t mip, Array<T> &a) const {
        check_type<T>("cutout_into");
        const std::size_t len = detail::mul(a.size(), sizeof(T), "cutout_into");
        if (a.order() == Order::F)
            read_dense(mip, a.box(), a.data(), len);
        else
            read_strided(mip, a.box(), a.data(), len, bytes_of<T>(a.strides()));
    }
    /// Untyped read into `len` bytes, dense in Fortran order (`cv_cutout_into`).
    void cutout_into_bytes(std::uint32_t mip, const Box &box, void *buf, std::size_t len) const {
        read_dense(mip, box, buf, len);
    }
    /// Untyped strided read (`cv_cutout_into_strided`): `byte_strides` in bytes.
    void cutout_into_bytes(std::uint32_t mip, const Box &box, void *buf, std::size_t len,
                           const Strides &byte_strides) const {
        read_strided(mip, box, buf, len, byte_strides);
    }

    /// Read single voxels (every channel of each) at absolute `points` of `mip`: the result
    /// holds point after point, channel after channel (`points.size() * channels` values).
    template <class T> std::vector<T> scattered_points(std::uint32_t mip, const std::vector<Vec3i> &points) const {
        check_type<T>("scattered_points");
        const std::size_t n = detail::mul(points.size(), num_channels(), "scattered_points");
        std::vector<T> out(n);
        std::vector<std::int64_t> xyz;
        xyz.reserve(points.size() * 3);
        for (const Vec3i &p : points) xyz.insert(xyz.end(), p.begin(), p.end());
        detail::check(cv_scattered_points(handle("scattered_points"), mip, points.size(),
                                          xyz.empty() ? nullptr : xyz.data(), out.empty() ? nullptr : out.data(),
                                          n * sizeof(T)),
                      "cv_scattered_points");
        return out;
    }

    /// Number of chunks (grid cells) `box` meets inside the bounds of `mip`.
    std::size_t chunk_count(std::uint32_t mip, const Box &box) const {
        std::size_t n = 0;
        detail::check(cv_chunk_count(handle("chunk_count"), mip, box.lo.data(), box.hi.data(), &n), "cv_chunk_count");
        return n;
    }
    /// Which chunks of `box` at `mip` are stored: one flag (1 or 0) per grid cell the box meets
    /// inside the bounds, x fastest.
    std::vector<std::uint8_t> chunks_exist(std::uint32_t mip, const Box &box) const {
        std::vector<std::uint8_t> flags(chunk_count(mip, box));
        std::size_t present = 0;
        detail::check(cv_chunks_exist(handle("chunks_exist"), mip, box.lo.data(), box.hi.data(),
                                      flags.empty() ? nullptr : flags.data(), flags.size(), &present),
                      "cv_chunks_exist");
        return flags;
    }

    // ---- label operations (uint32/uint64 layers) -------------------------------------------
    //
    // Everything the library hands out here is owned by a guard from the moment the call
    // returns, so it is released (`cv_labels_free`, `cv_bytes_free`, `cv_files_free`) on every
    // path, including a std::bad_alloc while copying it.

    /// Labels of a box, sorted ascending, with their voxel counts over every channel
    /// (`cv_unique`; `np.unique(cutout, return_counts=True)` without the cutout). `counts` is
    /// empty when `unique` was asked for labels only.
    struct Labels {
        std::vector<std::uint64_t> labels;
        std::vector<std::uint64_t> counts;
    };
    Labels unique(std::uint32_t mip, const Box &box, bool with_counts = true) const {
        detail::LabelArray l, c;
        std::size_t n = 0;
        const cv_status st = cv_unique(handle("unique"), mip, box.lo.data(), box.hi.data(), &l.p,
                                       with_counts ? &c.p : nullptr, &n);
        l.n = c.n = n;
        detail::check(st, "cv_unique");
        Labels out;
        out.labels = l.copy();
        if (with_counts) out.counts = c.copy();
        return out;
    }
    /// `unique` of the box `[lo, hi)`.
    Labels unique(std::uint32_t mip, const Vec3i &lo, const Vec3i &hi, bool with_counts = true) const {
        return unique(mip, Box{lo, hi}, with_counts);
    }
    /// A 0/1 mask of `box`: 1 where a voxel holds one of `labels` (one byte per voxel and
    /// channel, Fortran order; `cv_label_mask_into`; cloud-volume's `download(bbox, label=L)`).
    std::vector<std::uint8_t> label_mask(std::uint32_t mip, const Box &box, const std::vector<std::uint64_t> &labels) const {
        std::vector<std::uint8_t> out(detail::mul(static_cast<std::size_t>(box.voxels()), num_channels(), "label_mask"));
        label_mask_into(mip, box, labels, out.data(), out.size());
        return out;
    }
    /// `label_mask` into the caller's `len` bytes at `out`: exactly one per voxel and channel
    /// (voxels x channels), Fortran order; any other length is InvalidArgument before any I/O.
    void label_mask_into(std::uint32_t mip, const Box &box, const std::vector<std::uint64_t> &labels, std::uint8_t *out,
                         std::size_t len) const {
        detail::check(cv_label_mask_into(handle("label_mask_into"), mip, box.lo.data(), box.hi.data(),
                                         labels.empty() ? nullptr : labels.data(), labels.size(), len == 0 ? nullptr : out,
                                         len),
                      "cv_label_mask_into");
    }
    /// `label_mask_into` over a contiguous container of bytes (std::vector<std::uint8_t>,
    /// std::array, std::span, ...), which must hold exactly voxels x channels elements.
    template <class C, class = std::enable_if_t<detail::is_container<C>::value>>
    void label_mask_into(std::uint32_t mip, const Box &box, const std::vector<std::uint64_t> &labels, C &out) const {
        static_assert(sizeof(*out.data()) == 1 && std::is_integral_v<std::remove_pointer_t<decltype(out.data())>>,
                      "label_mask_into writes one byte (0 or 1) per voxel and channel: give a container of bytes");
        label_mask_into(mip, box, labels, reinterpret_cast<std::uint8_t *>(out.data()), static_cast<std::size_t>(out.size()));
    }
    /// The box cloud-volume's `download_point(pt, size, mip, coord_resolution)` reads:
    /// `pt` in mip 0 voxels, or in voxels of `coord_resolution` (nm) when given, moved to
    /// `mip`; `[p - size/2, p + size/2)` per axis, `[p, p + 1)` where the size is 1.
    Box point_box(std::uint32_t mip, const Vec3d &pt, const Vec3i &size,
                  const std::optional<Vec3d> &coord_resolution = std::nullopt) const {
        Box b;
        detail::check(cv_point_box(handle("point_box"), mip, pt.data(), size.data(),
                                   coord_resolution ? coord_resolution->data() : nullptr, b.lo.data(), b.hi.data()),
                      "cv_point_box");
        return b;
    }
    /// `download_point`: the cutout of `point_box`, in `order`. `T` must be the layer's type.
    template <class T>
    Array<T> download_point(std::uint32_t mip, const Vec3d &pt, const Vec3i &size,
                            const std::optional<Vec3d> &coord_resolution = std::nullopt, Order order = Order::F) const {
        check_type<T>("download_point");
        return cutout<T>(mip, point_box(mip, pt, size, coord_resolution), order);
    }
    /// A box renumbered 1, 2, ... in ascending label order (0 kept) in the smallest of uint8,
    /// uint16, uint32, uint64 that holds them (`cv_renumber`; cloud-volume's
    /// `download(bbox, renumber=True)`): `data` holds the elements of type `dtype`, Fortran
    /// order, every channel; value v stands for `labels[v]` (`labels[0]` is 0).
    struct Renumbered {
        std::vector<std::uint8_t> data;
        DataType dtype = DataType::uint8;
        std::vector<std::uint64_t> labels;

        /// Number of elements (voxels x channels).
        std::size_t size() const noexcept {
            const std::size_t e = size_of(dtype);
            return e == 0 ? 0 : data.size() / e;
        }
        /// Element `i` (Fortran order), widened to 64 bits.
        std::uint64_t value(std::size_t i) const {
            if (i >= size()) throw InvalidArgument("Renumbered::value: index " + std::to_string(i) + " out of range");
            const std::size_t e = size_of(dtype);
            std::uint64_t v = 0;
            std::memcpy(&v, data.data() + i * e, e);  // little-endian hosts only (checked above)
            return v;
        }
        /// The original label of element `i`: `labels[value(i)]`.
        std::uint64_t original(std::size_t i) const { return labels.at(static_cast<std::size_t>(value(i))); }
    };
    Renumbered renumber(std::uint32_t mip, const Box &box) const {
        detail::ByteArray d;
        detail::LabelArray l;
        std::size_t len = 0, n = 0;
        std::int32_t t = 0;
        const cv_status st = cv_renumber(handle("renumber"), mip, box.lo.data(), box.hi.data(), &d.p, &len, &t, &l.p, &n);
        d.n = len;
        l.n = n;
        detail::check(st, "cv_renumber");
        if (cv_dtype_size(t) == 0 || len % cv_dtype_size(t) != 0)
            throw InternalError("cv_renumber: data type code " + std::to_string(t) + " with " + std::to_string(len) + " bytes");
        Renumbered r;
        r.data = d.copy();
        r.dtype = static_cast<DataType>(t);
        r.labels = l.copy();
        return r;
    }
    /// One stored chunk file of `download_files`.
    struct File {
        std::string name;                ///< chunk key (`8_8_40/0-64_0-64_0-64`) or, sharded, Morton code
        std::vector<std::uint8_t> data;  ///< the file's bytes (decompressed unless asked not to)
    };
    /// The stored chunk files meeting `box` at `mip` (cloud-volume's `download_files`), in
    /// x-fastest cell order; missing chunks left out; gzip/brotli/zstd removed with `decompress`.
    std::vector<File> download_files(std::uint32_t mip, const Box &box, bool decompress = true) const {
        cv_files *raw = nullptr;
        detail::check(cv_download_files(handle("download_files"), mip, box.lo.data(), box.hi.data(), decompress ? 1 : 0, &raw),
                      "cv_download_files");
        const std::unique_ptr<cv_files, detail::FilesDeleter> f(raw);
        const std::size_t n = cv_files_count(f.get());
        std::vector<File> out;
        out.reserve(n);
        for (std::size_t i = 0; i < n; i++) {
            const char *name = nullptr;
            const std::uint8_t *data = nullptr;
            std::size_t len = 0;
            detail::check(cv_files_get(f.get(), i, &name, &data, &len), "cv_files_get");
            out.push_back(File{name != nullptr ? std::string(name) : std::string(),
                               data != nullptr ? std::vector<std::uint8_t>(data, data + len) : std::vector<std::uint8_t>()});
        }
        return out;
    }

    // ---- writes ---------------------------------------------------------------------------

    /// Write `box` at `mip` from `count` elements at `data`, dense in Fortran order (exactly
    /// voxels x channels). The box must lie on the chunk grid (or reach the volume edge) unless
    /// the handle has `non_aligned_writes`.
    template <class T> void write(std::uint32_t mip, const Box &box, const T *data, std::size_t count) const {
        check_type<T>("write");
        write_bytes(mip, box, data, detail::mul(count, sizeof(T), "write"));
    }
    template <class C, class = std::enable_if_t<detail::is_container<const C>::value>>
    void write(std::uint32_t mip, const Box &box, const C &in) const {
        write(mip, box, in.data(), static_cast<std::size_t>(in.size()));
    }
    /// Write an array at its `box()` (any order; a C or CXYZ array is transposed into a
    /// temporary Fortran copy first).
    template <class T> void write(std::uint32_t mip, const Array<T> &a) const {
        if (a.order() == Order::F) {
            write(mip, a.box(), a.data(), a.size());
        } else {
            check_type<T>("write");
            const Array<T> f = a.to_order(Order::F);
            write(mip, f.box(), f.data(), f.size());
        }
    }
    /// Untyped write of `len` bytes, dense in Fortran order (`cv_write_from`).
    void write_bytes(std::uint32_t mip, const Box &box, const void *buf, std::size_t len) const {
        detail::check(cv_write_from(handle("write"), mip, box.lo.data(), box.hi.data(), buf, len), "cv_write_from");
    }
    /// Delete the chunks of the chunk-aligned `box` at `mip` (`cv_delete`).
    void delete_chunks(std::uint32_t mip, const Box &box) const {
        detail::check(cv_delete(handle("delete_chunks"), mip, box.lo.data(), box.hi.data()), "cv_delete");
    }
    /// Empty the handle's caches (the `lru_bytes` memory cache and the layer's part of the
    /// `cache` disk cache); nothing without caches.
    void cache_clear() const { detail::check(cv_cache_clear(handle("cache_clear")), "cv_cache_clear"); }
    /// Add a scale downsampled from mip 0 by `factor` with `chunk_size` (mip 0's when absent),
    /// write the info, and return the new mip. Needs exclusive access to this Volume.
    std::uint32_t add_scale(const Vec3i &factor, const std::optional<Vec3i> &chunk_size = std::nullopt) {
        std::uint32_t mip = 0;
        detail::check(cv_add_scale(handle("add_scale"), factor.data(), chunk_size ? chunk_size->data() : nullptr, &mip),
                      "cv_add_scale");
        return mip;
    }

    // ---- meshes ---------------------------------------------------------------------------
    //
    // What the library hands out (`cv_mesh *`, `cv_skeleton *`, info strings) is owned by a guard
    // from the moment the call returns and copied into plain C++ values.

    /// The mesh of the segments `ids`, fused into one (cloud-volume's `vol.mesh.get([a, b, c])`,
    /// concatenated in id order; `cv_mesh_get`). Errors: no ids, a bad lod or chunk size
    /// (InvalidArgument), a segment without a mesh unless `allow_missing` (NotFound), corrupt
    /// fragments (DecodeError).
    Mesh mesh(const std::vector<std::uint64_t> &ids, const MeshOptions &options = MeshOptions()) const {
        return detail::copy_mesh(get_mesh(ids, options, "mesh").get());
    }
    /// The mesh of one segment.
    Mesh mesh(std::uint64_t id, const MeshOptions &options = MeshOptions()) const {
        return mesh(std::vector<std::uint64_t>{id}, options);
    }
    /// The meshes of `ids`, each on its own (cloud-volume's `vol.mesh.get(ids, fuse=False)` for
    /// legacy meshes, `vol.mesh.get(ids)` for multi-resolution ones; fetched in parallel;
    /// `cv_mesh_get_each`): element i is segment `ids[i]`'s mesh, std::nullopt when it has none
    /// and `allow_missing` is set (else the whole call throws NotFound).
    std::vector<std::optional<Mesh>> meshes_each(const std::vector<std::uint64_t> &ids,
                                                 const MeshOptions &options = MeshOptions()) const {
        const detail::MeshArgs a(options);
        std::vector<cv_mesh *> raw(ids.size(), nullptr);
        cv_mesh *none = nullptr;  // a writable `out` for an empty list
        const cv_status st = cv_mesh_get_each(handle("meshes_each"), ids.empty() ? nullptr : ids.data(), ids.size(),
                                              a.lod, a.weld, a.chunk, a.allow_missing, raw.empty() ? &none : raw.data());
        std::vector<detail::MeshPtr> owned;
        owned.reserve(raw.size());
        for (cv_mesh *m : raw) owned.emplace_back(m);
        detail::check(st, "cv_mesh_get_each");
        std::vector<std::optional<Mesh>> out;
        out.reserve(owned.size());
        for (const detail::MeshPtr &m : owned) {
            if (m)
                out.emplace_back(detail::copy_mesh(m.get()));
            else
                out.emplace_back(std::nullopt);
        }
        return out;
    }
    /// The number of levels of detail of segment `id`'s mesh (1 for a legacy mesh); NotFound
    /// when it has none.
    std::uint32_t mesh_lods(std::uint64_t id) const {
        std::uint32_t n = 0;
        detail::check(cv_mesh_lods(handle("mesh_lods"), id, &n), "cv_mesh_lods");
        return n;
    }
    /// Read `mesh(ids, options)` and save it to `path` as OBJ, PLY or STL, named by the
    /// extension (cloud-volume's `to_obj` / `to_ply` bytes; binary STL; `cv_mesh_save`).
    void save_mesh(const std::vector<std::uint64_t> &ids, const std::string &path,
                   const MeshOptions &options = MeshOptions()) const {
        const detail::MeshPtr m = get_mesh(ids, options, "save_mesh");
        detail::check(cv_mesh_save(m.get(), path.c_str()), "cv_mesh_save");
    }
    void save_mesh(std::uint64_t id, const std::string &path, const MeshOptions &options = MeshOptions()) const {
        save_mesh(std::vector<std::uint64_t>{id}, path, options);
    }
    /// Write segment `id`'s legacy mesh (cloud-volume's `vol.mesh.put`; one fragment, gzipped
    /// unless the handle has `compress(Compression::none)`). A face naming a vertex past the
    /// end is InvalidArgument; a multi-resolution mesh directory is Unsupported.
    void put_mesh(std::uint64_t id, const Mesh &mesh) const {
        detail::check(cv_mesh_put(handle("put_mesh"), id, mesh.vertices.empty() ? nullptr : mesh.vertices.front().data(),
                                  mesh.vertices.size(), mesh.faces.empty() ? nullptr : mesh.faces.front().data(),
                                  mesh.faces.size()),
                      "cv_mesh_put");
    }
    /// The mesh directory's info as the library understands it, JSON text (`{"@type": ...}`;
    /// `neuroglancer_legacy_mesh` when the layer has no mesh info).
    std::string mesh_info() const {
        char *s = nullptr;
        const cv_status st = cv_mesh_info_json(handle("mesh_info"), &s);
        std::unique_ptr<char, void (*)(char *)> guard(s, cv_string_free);
        detail::check(st, "cv_mesh_info_json");
        return s != nullptr ? std::string(s) : std::string();
    }

    // ---- skeletons ------------------------------------------------------------------------

    /// Segment `id`'s skeleton (cloud-volume's `vol.skeleton.get(id)`; `cv_skeleton_get`):
    /// vertices made physical with the skeleton info's transform, the info's vertex attributes.
    /// NotFound when it has none; DecodeError for a corrupt one.
    Skeleton skeleton(std::uint64_t id) const { return detail::copy_skeleton(get_skeleton(id, "skeleton").get()); }
    /// The skeletons of `ids` (fetched in parallel; `cv_skeleton_get_each`): element i is
    /// `ids[i]`'s, std::nullopt when it has none and `allow_missing` (else NotFound).
    std::vector<std::optional<Skeleton>> skeletons(const std::vector<std::uint64_t> &ids,
                                                   bool allow_missing = false) const {
        std::vector<cv_skeleton *> raw(ids.size(), nullptr);
        cv_skeleton *none = nullptr;
        const cv_status st = cv_skeleton_get_each(handle("skeletons"), ids.empty() ? nullptr : ids.data(), ids.size(),
                                                  allow_missing ? 1 : 0, raw.empty() ? &none : raw.data());
        std::vector<detail::SkeletonPtr> owned;
        owned.reserve(raw.size());
        for (cv_skeleton *s : raw) owned.emplace_back(s);
        detail::check(st, "cv_skeleton_get_each");
        std::vector<std::optional<Skeleton>> out;
        out.reserve(owned.size());
        for (const detail::SkeletonPtr &s : owned) {
            if (s)
                out.emplace_back(detail::copy_skeleton(s.get()));
            else
                out.emplace_back(std::nullopt);
        }
        return out;
    }
    /// Read segment `id`'s skeleton and save it to `path` as SWC (osteoid's `to_swc` text;
    /// `cv_skeleton_save_swc`).
    void save_skeleton(std::uint64_t id, const std::string &path) const {
        const detail::SkeletonPtr s = get_skeleton(id, "save_skeleton");
        detail::check(cv_skeleton_save_swc(s.get(), path.c_str()), "cv_skeleton_save_swc");
    }
    /// Write segment `id`'s skeleton (cloud-volume's `vol.skeleton.upload`; `cv_skeleton_put`):
    /// the vertices as given (stored space: the info's transform is not undone), the edges, and
    /// either no attributes or every attribute the skeleton info declares, matched by name, each
    /// of the info's type and component count with one entry per vertex (InvalidArgument
    /// otherwise, before anything is written). A sharded skeleton directory is Unsupported.
    void put_skeleton(std::uint64_t id, const Skeleton &skeleton) const {
        std::vector<const void *> attrs;
        if (!skeleton.attributes.empty()) {
            const std::vector<SkeletonAttributeInfo> want = skeleton_attributes();
            const std::size_t nv = skeleton.vertices.size();
            for (const SkeletonAttribute &a : skeleton.attributes) {
                bool declared = false;
                for (const SkeletonAttributeInfo &w : want) declared = declared || w.name == a.name;
                if (!declared)
                    throw InvalidArgument("cloudvolume::Volume::put_skeleton: attribute \"" + a.name +
                                          "\" is not in the skeleton info (" + attribute_names(want) + ")");
            }
            for (const SkeletonAttributeInfo &w : want) {
                const SkeletonAttribute *a = skeleton.attribute(w.name);
                if (a == nullptr)
                    throw InvalidArgument("cloudvolume::Volume::put_skeleton: no attribute \"" + w.name +
                                          "\" (the skeleton info declares " + attribute_names(want) +
                                          "; give all or none)");
                if (a->data_type != w.data_type || a->components != w.components)
                    throw InvalidArgument("cloudvolume::Volume::put_skeleton: attribute \"" + w.name + "\" is " +
                                          name(a->data_type) + " x " + std::to_string(a->components) +
                                          ", the skeleton info declares " + name(w.data_type) + " x " +
                                          std::to_string(w.components));
                const std::size_t len = detail::mul(detail::mul(nv, w.components, "put_skeleton"),
                                                    size_of(w.data_type), "put_skeleton");
                if (a->data.size() != len)
                    throw InvalidArgument("cloudvolume::Volume::put_skeleton: attribute \"" + w.name + "\" holds " +
                                          std::to_string(a->data.size()) + " bytes; " + std::to_string(nv) +
                                          " vertices take " + std::to_string(len));
                attrs.push_back(a->data.empty() ? nullptr : a->data.data());
            }
        }
        detail::check(cv_skeleton_put(handle("put_skeleton"), id,
                                      skeleton.vertices.empty() ? nullptr : skeleton.vertices.front().data(),
                                      skeleton.vertices.size(),
                                      skeleton.edges.empty() ? nullptr : skeleton.edges.front().data(),
                                      skeleton.edges.size(), attrs.empty() ? nullptr : attrs.data(), attrs.size()),
                      "cv_skeleton_put");
    }
    /// The skeleton directory's info as the library reads it (cloud-volume's default when the
    /// layer names none), JSON text with `transform` and `vertex_attributes`.
    std::string skeleton_info() const {
        char *s = nullptr;
        const cv_status st = cv_skeleton_info_json(handle("skeleton_info"), &s);
        std::unique_ptr<char, void (*)(char *)> guard(s, cv_string_free);
        detail::check(st, "cv_skeleton_info_json");
        return s != nullptr ? std::string(s) : std::string();
    }
    /// The vertex attributes `skeleton_info` declares, in its order (the order of every
    /// skeleton's `attributes`).
    std::vector<SkeletonAttributeInfo> skeleton_attributes() const {
        const std::string info = skeleton_info();
        return detail::InfoScanner(info).vertex_attributes();
    }

private:
    struct Deleter {
        void operator()(cv_volume *v) const noexcept { cv_free(v); }
    };

    detail::MeshPtr get_mesh(const std::vector<std::uint64_t> &ids, const MeshOptions &options, const char *what) const {
        const detail::MeshArgs a(options);
        cv_mesh *m = nullptr;
        const cv_status st = cv_mesh_get(handle(what), ids.empty() ? nullptr : ids.data(), ids.size(), a.lod, a.weld,
                                         a.chunk, a.allow_missing, &m);
        detail::MeshPtr owned(m);
        detail::check(st, "cv_mesh_get");
        if (!owned) throw InternalError("cv_mesh_get: CV_OK without a mesh");
        return owned;
    }
    detail::SkeletonPtr get_skeleton(std::uint64_t id, const char *what) const {
        cv_skeleton *s = nullptr;
        const cv_status st = cv_skeleton_get(handle(what), id, &s);
        detail::SkeletonPtr owned(s);
        detail::check(st, "cv_skeleton_get");
        if (!owned) throw InternalError("cv_skeleton_get: CV_OK without a skeleton");
        return owned;
    }
    static std::string attribute_names(const std::vector<SkeletonAttributeInfo> &attrs) {
        if (attrs.empty()) return "none";
        std::string s;
        for (std::size_t i = 0; i < attrs.size(); i++) s += (i ? ", " : "") + attrs[i].name;
        return s;
    }


    cv_volume *handle(const char *what) const {
        if (!h_) throw InvalidArgument(std::string("cloudvolume::Volume::") + what + ": empty Volume (moved from or closed)");
        return h_.get();
    }

    template <class T> void check_type(const char *what) const {
        static_assert(std::is_arithmetic_v<T> && !std::is_same_v<std::remove_cv_t<T>, bool>,
                      "T must be an element type: std::uint8_t ... std::int64_t, float, double");
        using U = std::remove_cv_t<T>;
        const DataType have = data_type();
        if (have != data_type_of<U>)
            throw TypeMismatch(std::string("cloudvolume::Volume::") + what + "<" + name(data_type_of<U>) +
                               ">: the layer's data type is " + name(have));
    }

    template <class T> static Strides bytes_of(const Strides &elements) {
        Strides b{};
        for (std::size_t i = 0; i < 4; i++) {
            if (elements[i] > std::numeric_limits<std::int64_t>::max() / static_cast<std::int64_t>(sizeof(T)) ||
                elements[i] < std::numeric_limits<std::int64_t>::min() / static_cast<std::int64_t>(sizeof(T)))
                throw InvalidArgument("cutout_into: stride " + std::to_string(elements[i]) + " (axis " +
                                      std::to_string(i) + ") overflows in bytes");
            b[i] = elements[i] * static_cast<std::int64_t>(sizeof(T));
        }
        return b;
    }

    void read_dense(std::uint32_t mip, const Box &box, void *buf, std::size_t len) const {
        detail::check(cv_cutout_into(handle("cutout"), mip, box.lo.data(), box.hi.data(), buf, len), "cv_cutout_into");
    }
    void read_strided(std::uint32_t mip, const Box &box, void *buf, std::size_t len, const Strides &byte_strides) const {
        detail::check(cv_cutout_into_strided(handle("cutout"), mip, box.lo.data(), box.hi.data(), buf, len,
                                             byte_strides.data()),
                      "cv_cutout_into_strided");
    }

    std::unique_ptr<cv_volume, Deleter> h_;
};

// ------------------------------------------------------------------------------------------
// Aligned image + segmentation cutouts, split masks, overlay pictures
// ------------------------------------------------------------------------------------------
//
// ImageryClient's `image_and_segmentation_cutout` over `cv_aligned_grid_of` /
// `cv_aligned_cutout_into`: one box, in voxels of a chosen resolution (absolute, 0-based,
// half-open, like every Box here), read from an image layer and a segmentation layer onto one
// grid. The arrays are Fortran order (x fastest, then y, z, channel) and keep axes of size 1
// (ImageryClient squeezes them).
//
//   cv::AlignedRequest req;
//   req.center = {160, 128, 16};  req.bbox_size = {128, 128, 1};   // or req.bounds = cv::Box{lo, hi}
//   req.resolution = cv::Vec3d{8, 8, 40};                          // else the image's at its mip
//   cv::AlignedCutout cut = cv::image_and_segmentation_cutout(image, seg, req);
//   std::vector<std::uint8_t> png = cv::overlay_png(cut.image_slice(0), cut.segmentation_slice(0),
//                                                   cut.grid.shape()[0], cut.grid.shape()[1]);

/// ImageryClient's `bounds_from_center`: `lo = center - floor(size / 2)`, `hi = lo + size`.
inline Box bounds_from_center(const Vec3i &center, const Vec3i &size) {
    Box b;
    for (std::size_t d = 0; d < 3; d++) {
        const std::int64_t s = size[d];
        const std::int64_t half = s / 2 - ((s % 2 != 0 && s < 0) ? 1 : 0);  // floor division
        b.lo[d] = center[d] - half;
        b.hi[d] = b.lo[d] + s;
    }
    return b;
}

/// The arguments of an aligned cutout (ImageryClient's names). Give `bounds`, or `center` and
/// `bbox_size`; every other member has ImageryClient's default.
struct AlignedRequest {
    /// `[lo, hi)` in voxels of `resolution`.
    std::optional<Box> bounds;
    /// Or a centre and a size in voxels of `resolution` (`bounds_from_center`).
    std::optional<Vec3i> center;
    std::optional<Vec3i> bbox_size;
    /// Nanometres per voxel of the box; absent: the image layer's resolution at its mip.
    std::optional<Vec3d> resolution;
    /// Absent: the layer's lowest mip whose key is not "placeholder".
    std::optional<std::uint32_t> image_mip;
    std::optional<std::uint32_t> segmentation_mip;
    /// Absent: every label ("all"). Otherwise only these labels stay (after agglomeration on
    /// graphene), every other voxel becomes 0; an empty list keeps none.
    std::optional<std::vector<std::uint64_t>> root_ids;
    /// The output is on the grid of `resolution` over exactly the box.
    bool scale_to_bounds = false;
    /// Also fill `AlignedCutout::masks`: one 0/1 mask per non-zero label of the segmentation.
    bool split_segmentations = false;
    /// With `split_segmentations`: a mask of label 0 too (when the segmentation holds 0).
    bool include_null_root = false;

    /// The box of the request: `bounds`, or `bounds_from_center(center, bbox_size)`.
    /// InvalidArgument when neither or both are given, or a centre without a size.
    Box box() const {
        if (bounds && (center || bbox_size))
            throw InvalidArgument("AlignedRequest: give bounds or center + bbox_size, not both");
        if (bounds) return *bounds;
        if (center && bbox_size) return bounds_from_center(*center, *bbox_size);
        if (center || bbox_size) throw InvalidArgument("AlignedRequest: center and bbox_size go together");
        throw InvalidArgument("AlignedRequest: no box (set bounds, or center and bbox_size)");
    }
};

/// The output grid of an aligned cutout: `[lo, hi)` in voxels of `resolution` (nm), and the mip
/// each layer is read at.
struct AlignedGrid {
    Vec3i lo{};
    Vec3i hi{};
    Vec3d resolution{};
    std::uint32_t image_mip = 0;
    std::uint32_t segmentation_mip = 0;

    Box box() const noexcept { return Box{lo, hi}; }
    /// Extents `hi - lo`: the shape of the arrays.
    Vec3i shape() const noexcept { return box().shape(); }
    /// Voxels of the grid.
    std::size_t voxels() const noexcept { return static_cast<std::size_t>(box().voxels()); }
};

/// An aligned cutout: the image and the segmentation over the same `grid`.
struct AlignedCutout {
    AlignedGrid grid;
    /// The image in the image layer's type (`image_type`, little-endian bytes) and channels,
    /// Fortran order `[x, y, z, c]`.
    std::vector<std::uint8_t> image;
    /// The segmentation's first channel, Fortran order `[x, y, z]`.
    std::vector<std::uint64_t> segmentation;
    DataType image_type = DataType::uint8;
    std::size_t channels = 1;
    /// With `split_segmentations`: label -> 0/1 mask (one byte per voxel, Fortran order),
    /// ascending labels.
    std::map<std::uint64_t, std::vector<std::uint8_t>> masks;

    /// The image as elements of `T`, which must be the image layer's type (TypeMismatch).
    template <class T> std::vector<T> image_as() const {
        static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>, "T must be an element type");
        if (data_type_of<T> != image_type)
            throw TypeMismatch(std::string("cloudvolume::AlignedCutout::image_as<") + name(data_type_of<T>) +
                               ">: the image's data type is " + name(image_type));
        std::vector<T> out(image.size() / sizeof(T));
        if (!out.empty()) std::memcpy(out.data(), image.data(), out.size() * sizeof(T));
        return out;
    }
    /// The z slice `z` (0-based from `grid.lo[2]`) of channel `c` of a uint8 image: width x
    /// height bytes, x fastest (what `overlay_rgb` / `overlay_png` take).
    std::vector<std::uint8_t> image_slice(std::int64_t z, std::size_t c = 0) const {
        if (image_type != DataType::uint8)
            throw TypeMismatch(std::string("cloudvolume::AlignedCutout::image_slice: the image is ") + name(image_type) +
                               ", not uint8");
        const std::size_t plane = check_slice(z, "image_slice");
        if (c >= channels)
            throw InvalidArgument("cloudvolume::AlignedCutout::image_slice: channel " + std::to_string(c) + " of " +
                                  std::to_string(channels));
        const auto zu = static_cast<std::size_t>(z), sz = static_cast<std::size_t>(grid.shape()[2]);
        const std::uint8_t *p = image.data() + (c * sz + zu) * plane;
        return std::vector<std::uint8_t>(p, p + plane);
    }
    /// The z slice `z` of the segmentation: width x height labels, x fastest.
    std::vector<std::uint64_t> segmentation_slice(std::int64_t z) const {
        const std::size_t plane = check_slice(z, "segmentation_slice");
        const std::uint64_t *p = segmentation.data() + static_cast<std::size_t>(z) * plane;
        return std::vector<std::uint64_t>(p, p + plane);
    }

private:
    std::size_t check_slice(std::int64_t z, const char *what) const {
        const Vec3i s = grid.shape();
        if (z < 0 || z >= s[2])
            throw InvalidArgument(std::string("cloudvolume::AlignedCutout::") + what + ": z " + std::to_string(z) +
                                  " outside 0.." + std::to_string(s[2] - 1));
        return static_cast<std::size_t>(s[0] * s[1]);
    }
};

namespace detail {

/// The C request of an AlignedRequest; points into `r` (its root ids), which must outlive it.
inline cv_aligned_request c_request(const AlignedRequest &r) {
    static const std::uint64_t no_ids = 0;  // a non-NULL pointer for an empty list (NULL keeps all)
    auto mip = [](const std::optional<std::uint32_t> &m, const char *what) -> std::int32_t {
        if (!m) return -1;
        if (*m > static_cast<std::uint32_t>(std::numeric_limits<std::int32_t>::max()))
            throw InvalidArgument(std::string("AlignedRequest: ") + what + " " + std::to_string(*m) + " is not a mip");
        return static_cast<std::int32_t>(*m);
    };
    cv_aligned_request c{};
    const Box b = r.box();
    for (std::size_t d = 0; d < 3; d++) {
        c.lo[d] = b.lo[d];
        c.hi[d] = b.hi[d];
        c.resolution[d] = r.resolution ? (*r.resolution)[d] : 0.0;
    }
    c.image_mip = mip(r.image_mip, "image_mip");
    c.segmentation_mip = mip(r.segmentation_mip, "segmentation_mip");
    if (r.root_ids) {
        c.root_ids = r.root_ids->empty() ? &no_ids : r.root_ids->data();
        c.n_root_ids = r.root_ids->size();
    }
    c.scale_to_bounds = r.scale_to_bounds ? 1 : 0;
    return c;
}

inline const cv_volume *aligned_handle(const Volume &v, const char *what) {
    if (!v) throw InvalidArgument(std::string("cloudvolume::") + what + ": empty Volume (moved from or closed)");
    return v.capi();
}

inline AlignedGrid grid_of(const Volume &image, const Volume &seg, const cv_aligned_request &c, const char *what) {
    cv_aligned_grid g{};
    check(cv_aligned_grid_of(aligned_handle(image, what), aligned_handle(seg, what), &c, &g), "cv_aligned_grid_of");
    AlignedGrid out;
    for (std::size_t d = 0; d < 3; d++) {
        out.lo[d] = g.lo[d];
        out.hi[d] = g.hi[d];
        out.resolution[d] = g.resolution[d];
    }
    out.image_mip = g.image_mip;
    out.segmentation_mip = g.segmentation_mip;
    return out;
}

/// Sorted distinct labels of `seg`, without 0 unless `include_zero`.
inline std::vector<std::uint64_t> distinct_labels(const std::uint64_t *seg, std::size_t n, bool include_zero) {
    std::vector<std::uint64_t> ids(seg, seg + n);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    if (!include_zero && !ids.empty() && ids.front() == 0) ids.erase(ids.begin());
    return ids;
}

/// The width x height pictures of `overlay_rgb` / `overlay_png`: both slices that many pixels.
inline void check_slices(std::size_t grey, std::size_t seg, std::size_t width, std::size_t height, const char *what) {
    const std::size_t n = mul(width, height, what);
    if (grey != n || seg != n)
        throw InvalidArgument(std::string("cloudvolume::") + what + ": a " + std::to_string(width) + "x" +
                              std::to_string(height) + " picture needs " + std::to_string(n) +
                              " pixels, but the image slice has " + std::to_string(grey) + " and the segmentation slice " +
                              std::to_string(seg));
}

}  // namespace detail

/// The grid `image_and_segmentation_cutout(image, seg, req)` returns, without reading.
inline AlignedGrid aligned_grid(const Volume &image, const Volume &seg, const AlignedRequest &req) {
    return detail::grid_of(image, seg, detail::c_request(req), "aligned_grid");
}

/// One 0/1 mask per label of `ids` (in that order) over the `n` labels at `seg`, one byte per
/// voxel (`cv_split_masks_into`).
inline std::vector<std::vector<std::uint8_t>> split_masks(const std::uint64_t *seg, std::size_t n,
                                                          const std::vector<std::uint64_t> &ids) {
    std::vector<std::uint8_t> all(detail::mul(n, ids.size(), "split_masks"));
    detail::check(cv_split_masks_into(n == 0 ? nullptr : seg, n, ids.empty() ? nullptr : ids.data(), ids.size(),
                                      all.empty() ? nullptr : all.data(), all.size()),
                  "cv_split_masks_into");
    std::vector<std::vector<std::uint8_t>> out;
    out.reserve(ids.size());
    for (std::size_t k = 0; k < ids.size(); k++)
        out.emplace_back(all.begin() + static_cast<std::ptrdiff_t>(k * n),
                         all.begin() + static_cast<std::ptrdiff_t>((k + 1) * n));
    return out;
}
inline std::vector<std::vector<std::uint8_t>> split_masks(const std::vector<std::uint64_t> &seg,
                                                          const std::vector<std::uint64_t> &ids) {
    return split_masks(seg.data(), seg.size(), ids);
}

/// ImageryClient's `split_segmentations`: label -> 0/1 mask for every distinct non-zero label of
/// `seg` (and 0, when present, with `include_null_root`), ascending.
inline std::map<std::uint64_t, std::vector<std::uint8_t>> split_segmentations(const std::vector<std::uint64_t> &seg,
                                                                              bool include_null_root = false) {
    const std::vector<std::uint64_t> ids = detail::distinct_labels(seg.data(), seg.size(), include_null_root);
    std::vector<std::vector<std::uint8_t>> m = split_masks(seg, ids);
    std::map<std::uint64_t, std::vector<std::uint8_t>> out;
    for (std::size_t k = 0; k < ids.size(); k++) out.emplace(ids[k], std::move(m[k]));
    return out;
}

/// ImageryClient's `image_and_segmentation_cutout`: the image layer `image` and the
/// segmentation layer `seg` (uint32/uint64, Precomputed or graphene) over `req.box()` on one
/// grid (`aligned_grid`): the finer of the two mips' resolutions, or `req.resolution` with
/// `scale_to_bounds`; the other layer resampled by nearest neighbour by physical position.
/// Errors (the library's message): an empty box, an unknown mip, a segmentation that is not a
/// label layer, a box outside a `bounded` handle, missing chunks without `fill_missing`.
inline AlignedCutout image_and_segmentation_cutout(const Volume &image, const Volume &seg, const AlignedRequest &req) {
    const cv_aligned_request c = detail::c_request(req);
    AlignedCutout out;
    out.grid = detail::grid_of(image, seg, c, "image_and_segmentation_cutout");
    out.image_type = image.data_type();
    out.channels = image.num_channels();
    const std::size_t n = out.grid.voxels();
    out.image.resize(detail::mul(detail::mul(n, out.channels, "image_and_segmentation_cutout"), size_of(out.image_type),
                                 "image_and_segmentation_cutout"));
    out.segmentation.resize(n);
    detail::check(cv_aligned_cutout_into(image.capi(), seg.capi(), &c, out.image.empty() ? nullptr : out.image.data(),
                                         out.image.size(), out.segmentation.empty() ? nullptr : out.segmentation.data(),
                                         out.segmentation.size()),
                  "cv_aligned_cutout_into");
    if (req.split_segmentations) out.masks = split_segmentations(out.segmentation, req.include_null_root);
    return out;
}

/// The overlay colour (r, g, b) of segment `id`: the same in every picture and every binding
/// (label 0 is never drawn).
inline std::array<std::uint8_t, 3> segment_color(std::uint64_t id) {
    std::array<std::uint8_t, 3> rgb{};
    detail::check(cv_segment_color(id, rgb.data()), "cv_segment_color");
    return rgb;
}

/// The segmentation slice `seg` over the greyscale slice `grey` (each `width * height` pixels,
/// x fastest, e.g. `AlignedCutout::segmentation_slice` / `image_slice`): every pixel of a
/// non-zero label (with `outline > 0` only those within `outline` pixels, city block, of
/// another label) is `round(grey * (1 - alpha) + colour * alpha)` per channel with the
/// segment's `segment_color`; other pixels stay grey. Interleaved RGB, row by row
/// (`3 * width * height` bytes).
inline std::vector<std::uint8_t> overlay_rgb(const std::vector<std::uint8_t> &grey, const std::vector<std::uint64_t> &seg,
                                             std::size_t width, std::size_t height, float alpha = 0.5f,
                                             std::uint32_t outline = 0) {
    detail::check_slices(grey.size(), seg.size(), width, height, "overlay_rgb");
    std::vector<std::uint8_t> out(detail::mul(grey.size(), 3, "overlay_rgb"));
    detail::check(cv_overlay_rgb_into(grey.empty() ? nullptr : grey.data(), seg.empty() ? nullptr : seg.data(), width,
                                      height, alpha, outline, out.empty() ? nullptr : out.data(), out.size()),
                  "cv_overlay_rgb_into");
    return out;
}

/// `overlay_rgb` encoded as an 8-bit RGB PNG file (`width` across, `height` down).
inline std::vector<std::uint8_t> overlay_png(const std::vector<std::uint8_t> &grey, const std::vector<std::uint64_t> &seg,
                                             std::size_t width, std::size_t height, float alpha = 0.5f,
                                             std::uint32_t outline = 0) {
    detail::check_slices(grey.size(), seg.size(), width, height, "overlay_png");
    detail::ByteArray png;
    detail::check(cv_overlay_png(grey.empty() ? nullptr : grey.data(), seg.empty() ? nullptr : seg.data(), width, height,
                                 alpha, outline, &png.p, &png.n),
                  "cv_overlay_png");
    return png.copy();
}

}  // namespace cloudvolume

#endif  // CLOUDVOLUME_HPP
