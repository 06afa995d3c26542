// The C++ wrapper (bindings/cpp/include/cloudvolume.hpp) on layers it writes itself into a
// temporary directory: create, metadata, writes in both orders, reads in both orders and into
// strided views, non-aligned writes, delete, add_scale, scattered points, chunk existence,
// compression, threads, move-only ownership, and an exception of the right class, code and
// message on every error path.
//
// usage: test_wrapper
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <limits>
#include <map>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <vector>

#include "cloudvolume.hpp"
#include "harness.hpp"

namespace cv = cloudvolume;
namespace fs = std::filesystem;

std::string second_tu_summary(const cloudvolume::Volume &vol);  // tests/second_tu.cpp

namespace {

// Move-only ownership, checked at compile time.
static_assert(!std::is_copy_constructible_v<cv::Volume>, "Volume must not be copyable");
static_assert(!std::is_copy_assignable_v<cv::Volume>, "Volume must not be copy-assignable");
static_assert(std::is_nothrow_move_constructible_v<cv::Volume>, "Volume moves must not throw");
static_assert(std::is_nothrow_move_assignable_v<cv::Volume>, "Volume move-assignment must not throw");
static_assert(std::is_nothrow_destructible_v<cv::Volume>, "Volume destruction must not throw");
static_assert(std::is_base_of_v<std::runtime_error, cv::Error>, "Error is a runtime_error");
static_assert(std::is_base_of_v<cv::InvalidArgument, cv::TypeMismatch>, "TypeMismatch is an InvalidArgument");
static_assert(cv::detail::is_container<std::vector<float>>::value && cv::detail::is_container<const std::vector<float>>::value &&
                  !cv::detail::is_container<cv::Array<float>>::value && !cv::detail::is_container<float *>::value,
              "Arrays go through their own overloads (their order matters), not the container ones");
static_assert(cv::data_type_of<std::uint16_t> == cv::DataType::uint16 && cv::data_type_of<double> == cv::DataType::float64,
              "data_type_of");

// Layer A: uint16, 2 channels, the pattern of tests/c/test_capi.c.
const cv::Box A_BOUNDS{{-3, 5, 10}, {47, 45, 30}};
const cv::Vec3i A_CHUNK{16, 16, 8};

std::uint16_t pattern(std::int64_t x, std::int64_t y, std::int64_t z, std::int64_t c) {
    return static_cast<std::uint16_t>(static_cast<std::uint64_t>(x * 7 + y * 131 + z * 1031 + c * 50021));
}

cv::Array<std::uint16_t> pattern_array(const cv::Box &b, cv::Order order, std::uint16_t plus = 0) {
    cv::Array<std::uint16_t> a(b, 2, order);
    const cv::Vec3i s = b.shape();
    for (std::size_t c = 0; c < 2; c++)
        for (std::int64_t z = 0; z < s[2]; z++)
            for (std::int64_t y = 0; y < s[1]; y++)
                for (std::int64_t x = 0; x < s[0]; x++)
                    a(static_cast<std::size_t>(x), static_cast<std::size_t>(y), static_cast<std::size_t>(z), c) =
                        static_cast<std::uint16_t>(pattern(b.lo[0] + x, b.lo[1] + y, b.lo[2] + z, static_cast<std::int64_t>(c)) + plus);
    return a;
}

/// Voxels of `a` that differ from `want(x, y, z, c)` (absolute coordinates).
template <class T, class F> std::size_t mismatches(const cv::Array<T> &a, F want) {
    std::size_t bad = 0;
    const cv::Vec3i s = a.shape();
    for (std::size_t c = 0; c < a.channels(); c++)
        for (std::int64_t z = 0; z < s[2]; z++)
            for (std::int64_t y = 0; y < s[1]; y++)
                for (std::int64_t x = 0; x < s[0]; x++)
                    if (a(static_cast<std::size_t>(x), static_cast<std::size_t>(y), static_cast<std::size_t>(z), c) !=
                        want(a.box().lo[0] + x, a.box().lo[1] + y, a.box().lo[2] + z, static_cast<std::int64_t>(c)))
                        bad++;
    return bad;
}

std::string a_info() {
    cv::InfoSpec spec;
    spec.data_type = cv::DataType::uint16;
    spec.num_channels = 2;
    spec.resolution = {4, 4, 40};
    spec.voxel_offset = A_BOUNDS.lo;
    spec.size = A_BOUNDS.shape();
    spec.chunk_size = A_CHUNK;
    return cv::new_info(spec);
}

/// The files under `dir` (recursively) whose name contains `part`.
std::vector<std::string> files_named(const std::string &dir, const std::string &part) {
    std::vector<std::string> out;
    for (const auto &e : fs::recursive_directory_iterator(dir))
        if (e.is_regular_file() && e.path().filename().string().find(part) != std::string::npos)
            out.push_back(e.path().string());
    return out;
}

void test_errors_map() {
    const cv_status codes[] = {CV_ERR_INVALID_ARGUMENT, CV_ERR_OUT_OF_BOUNDS, CV_ERR_NOT_FOUND, CV_ERR_IO,
                               CV_ERR_AUTH, CV_ERR_DECODE, CV_ERR_UNSUPPORTED, CV_ERR_INTERNAL};
    EXPECT_THROW(cv::InvalidArgument, "status 1", cv::detail::throw_status(codes[0], "m1"), CV_ERR_INVALID_ARGUMENT, "m1");
    EXPECT_THROW(cv::OutOfBounds, "status 2", cv::detail::throw_status(codes[1], "m2"), CV_ERR_OUT_OF_BOUNDS, "m2");
    EXPECT_THROW(cv::NotFound, "status 3", cv::detail::throw_status(codes[2], "m3"), CV_ERR_NOT_FOUND, "m3");
    EXPECT_THROW(cv::IoError, "status 4", cv::detail::throw_status(codes[3], "m4"), CV_ERR_IO, "m4");
    EXPECT_THROW(cv::AuthError, "status 5", cv::detail::throw_status(codes[4], "m5"), CV_ERR_AUTH, "m5");
    EXPECT_THROW(cv::DecodeError, "status 6", cv::detail::throw_status(codes[5], "m6"), CV_ERR_DECODE, "m6");
    EXPECT_THROW(cv::Unsupported, "status 7", cv::detail::throw_status(codes[6], "m7"), CV_ERR_UNSUPPORTED, "m7");
    EXPECT_THROW(cv::InternalError, "status 8", cv::detail::throw_status(codes[7], "m8"), CV_ERR_INTERNAL, "m8");
    EXPECT_THROW(cv::Error, "status 99", cv::detail::throw_status(99, "m99"), 99, "m99");
    const char *names[] = {"CV_ERR_INVALID_ARGUMENT", "CV_ERR_OUT_OF_BOUNDS", "CV_ERR_NOT_FOUND", "CV_ERR_IO",
                           "CV_ERR_AUTH", "CV_ERR_DECODE", "CV_ERR_UNSUPPORTED", "CV_ERR_INTERNAL"};
    for (int i = 0; i < 8; i++) CHECK(std::string(cv::status_name(codes[i])) == names[i], "status_name " << i);
    CHECK(std::string(cv::status_name(CV_OK)) == "CV_OK" && std::string(cv::status_name(42)) == "CV_ERR_UNKNOWN",
          "status_name of OK / unknown");
    // check() passes CV_OK and keeps the library's message otherwise.
    cv::detail::check(CV_OK, "nothing");
    CHECK(true, "");
}

void test_options_json() {
    CHECK(cv::Options().to_json() == "{}" && cv::Options().empty(), "empty options");
    const std::string j = cv::Options()
                              .fill_missing(true)
                              .bounded(false)
                              .background_color(7)
                              .parallel(3)
                              .mip(1)
                              .timeout(2.5)
                              .max_attempts(2)
                              .gs_endpoint("http://h\"x\\y\n")
                              .compress(cv::Compression::zstd)
                              .compress_level(4)
                              .non_aligned_writes(true)
                              .delete_black_uploads(false)
                              .overwrite(true)
                              .cache(false)
                              .background_color(0.25)  // replaces the 7, keeps its place
                              .to_json();
    const std::string want =
        "{\"fill_missing\": true, \"bounded\": false, \"background_color\": 0.25, \"parallel\": 3, \"mip\": 1, "
        "\"timeout\": 2.5, \"max_attempts\": 2, \"gs_endpoint\": \"http://h\\\"x\\\\y\\n\", \"compress\": \"zstd\", "
        "\"compress_level\": 4, \"non_aligned_writes\": true, \"delete_black_uploads\": false, \"overwrite\": true, "
        "\"cache\": false}";
    CHECK(j == want, "options JSON\n  got  " << j << "\n  want " << want);
    CHECK(cv::Options().compress(cv::Compression::automatic).to_json() == "{\"compress\": null}", "compress null");
    CHECK(cv::Options().compress(cv::Compression::none).to_json() == "{\"compress\": false}", "compress false");
    CHECK(cv::Options().compress(cv::Compression::gzip).to_json() == "{\"compress\": \"gzip\"}", "compress gzip");
    CHECK(cv::Options().background_color(std::uint64_t{18446744073709551615u}).to_json() ==
              "{\"background_color\": 18446744073709551615}",
          "uint64 background");
    CHECK(cv::Options().background_color(-1e300).to_json() == "{\"background_color\": -1.0000000000000001e+300}",
          "large double: " << cv::Options().background_color(-1e300).to_json());
    CHECK(cv::Options().set("x\ty", "[1]").to_json() == "{\"x\\ty\": [1]}", "escaped key");
    const std::string net = cv::Options()
                                .cache_dir("/tmp/c")
                                .lru_bytes(1048576)
                                .max_inflight_bytes(65536)
                                .s3_endpoint("http://127.0.0.1:9000")
                                .secrets_file("/s.json")
                                .gs_token("ya29.t")
                                .s3_region("eu-west-1")
                                .anonymous(true)
                                .connect_timeout(3)
                                .retry_budget(0.5)
                                .checksum(false)
                                .to_json();
    const std::string net_want =
        "{\"cache\": \"/tmp/c\", \"lru_bytes\": 1048576, \"max_inflight_bytes\": 65536, \"s3_endpoint\": \"http://127.0.0.1:9000\", "
        "\"secrets\": \"/s.json\", \"gs_token\": \"ya29.t\", \"s3_region\": \"eu-west-1\", \"anonymous\": true, "
        "\"connect_timeout\": 3, \"retry_budget\": 0.5, \"checksum\": false}";
    CHECK(net == net_want, "network options JSON\n  got  " << net << "\n  want " << net_want);
    CHECK(cv::Options().secrets_json("{\"a\": 1}").to_json() == "{\"secrets\": {\"a\": 1}}", "secrets object");
    const std::string graph =
        cv::Options().agglomerate(false).timestamp(1700000000.5).stop_layer(2).use_https(true).cave_token("t0k").to_json();
    const std::string graph_want =
        "{\"agglomerate\": false, \"timestamp\": 1700000000.5, \"stop_layer\": 2, \"use_https\": true, \"secrets\": \"t0k\"}";
    CHECK(graph == graph_want, "graphene options JSON\n  got  " << graph << "\n  want " << graph_want);
    EXPECT_THROW(cv::InvalidArgument, "timeout NaN", cv::Options().timeout(std::nan("")), CV_ERR_INVALID_ARGUMENT,
                 "timeout");
    EXPECT_THROW(cv::InvalidArgument, "background inf",
                 cv::Options().background_color(std::numeric_limits<double>::infinity()), CV_ERR_INVALID_ARGUMENT,
                 "background_color");
}

void test_array() {
    const cv::Box b{{1, 2, 3}, {4, 6, 8}};
    cv::Array<std::int32_t> f(b, 2);
    CHECK(f.size() == 3 * 4 * 5 * 2 && f.order() == cv::Order::F, "array size");
    CHECK((f.strides() == cv::Strides{1, 3, 12, 60}), "F strides");
    cv::Array<std::int32_t> c(b, 2, cv::Order::C);
    CHECK((c.strides() == cv::Strides{4 * 5 * 2, 5 * 2, 2, 1}), "C strides");
    std::int32_t k = 0;
    for (auto &v : f) v = k++;
    CHECK(f(1, 0, 0, 0) == 1 && f(0, 1, 0, 0) == 3 && f(0, 0, 1, 0) == 12 && f(0, 0, 0, 1) == 60, "F indexing");
    const cv::Array<std::int32_t> t = f.to_order(cv::Order::C);
    CHECK(t(2, 3, 4, 1) == f(2, 3, 4, 1) && t.data()[1] == f(0, 0, 0, 1) && t.data()[2] == f(0, 0, 1, 0), "to_order");
    CHECK(t.to_order(cv::Order::F).release() == std::vector<std::int32_t>(f.begin(), f.end()), "round trip");
    bool threw = false;
    try {
        (void)f.at(3, 0, 0, 0);
    } catch (const std::out_of_range &e) {
        threw = std::string(e.what()).find("(3, 0, 0, 0)") != std::string::npos;
    }
    CHECK(threw, "Array::at out of range");
    EXPECT_THROW(cv::InvalidArgument, "Array over an inverted box", cv::Array<std::uint8_t>(cv::Box{{0, 0, 0}, {1, -1, 1}}, 1),
                 CV_ERR_INVALID_ARGUMENT, "inverted", "(1, -1, 1)");
    CHECK(b.voxels() == 60 && (cv::Box{{0, 0, 0}, {1, 0, 1}}).voxels() == 0, "Box::voxels");
}

void test_create_and_read(const harness::TempDir &tmp) {
    const std::string url = tmp.url("a");
    const std::string info = a_info();
    CHECK(info.find("\"uint16\"") != std::string::npos && info.find("\"scales\"") != std::string::npos,
          "new_info: " << info);

    cv::Volume vol = cv::Volume::create(url, info);
    CHECK(static_cast<bool>(vol), "created volume is open");
    CHECK(vol.data_type() == cv::DataType::uint16 && vol.item_size() == 2, "data type");
    CHECK(vol.num_channels() == 2 && vol.num_mips() == 1 && vol.default_mip() == 0, "channels, mips");
    CHECK(vol.bounds(0) == A_BOUNDS, "bounds " << vol.bounds(0).str());
    CHECK(vol.chunk_size(0) == A_CHUNK, "chunk size");
    CHECK((vol.resolution(0) == cv::Vec3d{4, 4, 40}), "resolution");
    CHECK(vol.encoding(0) == cv::Encoding::raw && std::string(cv::name(vol.encoding(0))) == "raw", "encoding");
    CHECK(vol.info_json().find("\"uint16\"") != std::string::npos, "info_json");
    CHECK(vol.cutout_len(A_BOUNDS) == 50u * 40 * 20 * 2 * 2, "cutout_len");

    // Write everything from a Fortran array, read it back in both orders.
    vol.write(0, pattern_array(A_BOUNDS, cv::Order::F));
    const cv::Array<std::uint16_t> all = vol.cutout<std::uint16_t>(0, A_BOUNDS);
    CHECK(mismatches(all, pattern) == 0, "whole volume read back (Fortran)");
    const cv::Box inner{{0, 10, 12}, {31, 38, 27}};
    const cv::Array<std::uint16_t> c = vol.cutout<std::uint16_t>(0, inner, cv::Order::C);
    CHECK(c.order() == cv::Order::C && mismatches(c, pattern) == 0, "box read back in C order");
    // Its raw memory: channel fastest, then z, y, x.
    CHECK(c.data()[0] == pattern(0, 10, 12, 0) && c.data()[1] == pattern(0, 10, 12, 1) &&
              c.data()[2] == pattern(0, 10, 13, 0) && c.data()[2 * 15] == pattern(0, 11, 12, 0),
          "C-order memory layout");

    // The dense pointer and container forms, and the untyped form.
    std::vector<std::uint16_t> buf(static_cast<std::size_t>(inner.voxels()) * 2);
    vol.cutout_into(0, inner, buf);
    CHECK(buf[0] == pattern(0, 10, 12, 0) && buf[1] == pattern(1, 10, 12, 0) && buf.back() == pattern(30, 37, 26, 1),
          "cutout_into(vector)");
    std::vector<unsigned char> bytes(buf.size() * 2);
    vol.cutout_into_bytes(0, inner, bytes.data(), bytes.size());
    CHECK(std::memcmp(bytes.data(), buf.data(), bytes.size()) == 0, "cutout_into_bytes");

    // Raw memory of a z-y-x array (which is Fortran x-y-z): strides {1, X, X*Y, X*Y*Z}.
    const cv::Vec3i s = inner.shape();
    std::vector<std::uint16_t> zyx(buf.size());
    vol.cutout_into(0, inner, zyx, cv::dense_strides(s, 2, cv::Order::F));
    CHECK(zyx == buf, "strided read with Fortran strides equals the dense read");
    // One z slice as [y][x] images, written into the middle of larger ones.
    const cv::Box slice{{0, 10, 20}, {31, 38, 21}};
    // Two planes (one per channel) of an image 40 wide and 30 high; the slice goes to (4, 1).
    const std::int64_t W = 40, H = 30;
    std::vector<std::uint16_t> planes(static_cast<std::size_t>(2 * W * H), 0xEEEE);
    const std::size_t origin = static_cast<std::size_t>(1 * W + 4);
    vol.cutout_into(0, slice, planes.data() + origin, planes.size() - origin, cv::Strides{1, W, 1, W * H});
    std::size_t bad = 0, touched = 0;
    for (std::int64_t ch = 0; ch < 2; ch++)
        for (std::int64_t r = 0; r < H; r++)
            for (std::int64_t col = 0; col < W; col++) {
                const std::uint16_t got = planes[static_cast<std::size_t>(ch * W * H + r * W + col)];
                const bool in = col >= 4 && col < 4 + 31 && r >= 1 && r < 1 + 28;
                if (in && got != pattern(col - 4, 10 + r - 1, 20, ch)) bad++;
                if (!in && got != 0xEEEE) touched++;
            }
    CHECK(bad == 0 && touched == 0, "slice into a sub-image: " << bad << " wrong, " << touched << " touched outside");

    // Into existing arrays, in their own order.
    for (cv::Order order : {cv::Order::F, cv::Order::C}) {
        cv::Array<std::uint16_t> into(inner, 2, order);
        vol.cutout_into(0, into);
        CHECK(mismatches(into, pattern) == 0, "cutout_into(Array) in order " << (order == cv::Order::C ? "C" : "F"));
    }
    cv::Array<std::uint16_t> three(inner, 3);
    EXPECT_THROW(cv::InvalidArgument, "cutout_into(Array) with 3 channels", vol.cutout_into(0, three),
                 CV_ERR_INVALID_ARGUMENT, "buf_len");

    // With a memory cache: the same bytes, before and after emptying it.
    const cv::Volume cached = cv::Volume::open(url, cv::Options().lru_bytes(1 << 20));
    CHECK(mismatches(cached.cutout<std::uint16_t>(0, inner), pattern) == 0, "read with lru_bytes");
    const cv::Volume budgeted = cv::Volume::open(url, cv::Options().max_inflight_bytes(65536).parallel(3));
    CHECK(mismatches(budgeted.cutout<std::uint16_t>(0, inner), pattern) == 0, "read under a 64 KiB byte budget");
    EXPECT_THROW(cv::InvalidArgument, "max_inflight_bytes below 64 KiB",
                 cv::Volume::open(url, cv::Options().max_inflight_bytes(1000)), CV_ERR_INVALID_ARGUMENT,
                 "max_inflight_bytes");
    CHECK(mismatches(cached.cutout<std::uint16_t>(0, inner, cv::Order::C), pattern) == 0, "read again from the cache");
    cached.cache_clear();
    vol.cache_clear();  // no caches: nothing to do
    CHECK(mismatches(cached.cutout<std::uint16_t>(0, inner), pattern) == 0, "read after cache_clear");

    // Other shapes: one voxel, one line, the last voxel.
    const cv::Array<std::uint16_t> one = vol.cutout<std::uint16_t>(0, cv::Box{{46, 44, 29}, {47, 45, 30}}, cv::Order::C);
    CHECK(one.size() == 2 && one(0, 0, 0, 0) == pattern(46, 44, 29, 0) && one(0, 0, 0, 1) == pattern(46, 44, 29, 1),
          "last voxel");

    // Scattered points (point after point, channel after channel).
    const std::vector<cv::Vec3i> pts{{-3, 5, 10}, {46, 44, 29}, {0, 20, 15}, {0, 20, 15}, {17, 33, 22}};
    const std::vector<std::uint16_t> got = vol.scattered_points<std::uint16_t>(0, pts);
    bool ok = got.size() == pts.size() * 2;
    for (std::size_t i = 0; ok && i < pts.size(); i++)
        for (std::int64_t ch = 0; ch < 2; ch++)
            ok = ok && got[i * 2 + static_cast<std::size_t>(ch)] == pattern(pts[i][0], pts[i][1], pts[i][2], ch);
    CHECK(ok, "scattered points");
    CHECK(vol.scattered_points<std::uint16_t>(0, {}).empty(), "no points");

    // Chunk existence: every one of the 4 x 3 x 3 cells is stored.
    const std::vector<std::uint8_t> flags = vol.chunks_exist(0, A_BOUNDS);
    CHECK(flags.size() == 36 && vol.chunk_count(0, A_BOUNDS) == 36, "chunk count " << flags.size());
    CHECK(std::vector<std::uint8_t>(36, 1) == flags, "all chunks exist");

    // The header's functions from another translation unit.
    const std::string summary = second_tu_summary(vol);
    CHECK(summary == cv::version() + " uint16 " + std::to_string(pattern(-3, 5, 10, 1)) +
                         " {\"bounded\": false} CV_ERR_IO",
          "second translation unit: " << summary);

    // The C handle stays usable as an escape hatch.
    std::uint32_t nc = 0;
    CHECK(cv_num_channels(vol.capi(), &nc) == CV_OK && nc == 2, "capi()");
}

void test_writes(const harness::TempDir &tmp) {
    const std::string url = tmp.url("a");
    const cv::Volume vol = cv::Volume::open(url);
    const cv::Box cell{{-3, 5, 10}, {13, 21, 18}};

    // A C-order array is written as the same voxels.
    vol.write(0, pattern_array(cell, cv::Order::C, 1));
    CHECK(mismatches(vol.cutout<std::uint16_t>(0, cell), [](auto x, auto y, auto z, auto c) {
              return static_cast<std::uint16_t>(pattern(x, y, z, c) + 1);
          }) == 0,
          "C-order write read back");
    // Pointer form, back to the pattern; an edge box reaching the volume's end is aligned.
    const cv::Box edge{{45, 37, 26}, {47, 45, 30}};
    for (const cv::Box &b : {cell, edge}) {
        const cv::Array<std::uint16_t> a = pattern_array(b, cv::Order::F);
        vol.write(0, b, a.data(), a.size());
    }
    CHECK(mismatches(vol.cutout<std::uint16_t>(0, A_BOUNDS), pattern) == 0, "pointer writes read back");

    // Non-aligned writes need the option.
    const cv::Box small{{0, 10, 12}, {5, 13, 20}};
    std::vector<std::uint16_t> fill(static_cast<std::size_t>(small.voxels()) * 2, 4242);
    EXPECT_THROW(cv::InvalidArgument, "write off the chunk grid", vol.write(0, small, fill), CV_ERR_INVALID_ARGUMENT,
                 "not aligned", "non_aligned_writes");
    const cv::Volume na = cv::Volume::open(url, cv::Options().non_aligned_writes(true));
    na.write(0, small, fill);
    const cv::Box around{{-2, 8, 10}, {9, 16, 23}};
    CHECK(mismatches(na.cutout<std::uint16_t>(0, around), [&](auto x, auto y, auto z, auto c) {
              const bool in = x >= 0 && x < 5 && y >= 10 && y < 13 && z >= 12 && z < 20;
              return in ? std::uint16_t{4242} : pattern(x, y, z, c);
          }) == 0,
          "non-aligned write merged into its chunks");
    vol.write(0, pattern_array(A_BOUNDS, cv::Order::F));

    // Write errors.
    std::vector<std::uint16_t> short_buf(static_cast<std::size_t>(cell.voxels()) * 2 - 1);
    EXPECT_THROW(cv::InvalidArgument, "write with a short buffer", vol.write(0, cell, short_buf),
                 CV_ERR_INVALID_ARGUMENT, "8192", "8190");
    std::vector<std::int16_t> wrong(static_cast<std::size_t>(cell.voxels()) * 2);
    EXPECT_THROW(cv::TypeMismatch, "write<int16> to a uint16 layer", vol.write(0, cell, wrong), CV_ERR_INVALID_ARGUMENT,
                 "write<int16>", "uint16");
    EXPECT_THROW(cv::OutOfBounds, "write past the bounds", vol.write(0, pattern_array(cv::Box{{45, 37, 26}, {61, 53, 34}}, cv::Order::F)),
                 CV_ERR_OUT_OF_BOUNDS, "61");
    EXPECT_THROW(cv::InvalidArgument, "write at mip 3", vol.write(3, cell, short_buf), CV_ERR_INVALID_ARGUMENT, "mip 3");
    EXPECT_THROW(cv::InvalidArgument, "create over an existing info", cv::Volume::create(url, a_info()),
                 CV_ERR_INVALID_ARGUMENT, "already exists");
    CHECK(static_cast<bool>(cv::Volume::create(url, a_info(), cv::Options().overwrite(true))), "create with overwrite");
    cv::InfoSpec bad;
    bad.encoding = "bogus_encoding";
    bad.size = {8, 8, 8};
    EXPECT_THROW(cv::InvalidArgument, "new_info with a bad encoding", cv::new_info(bad), CV_ERR_INVALID_ARGUMENT,
                 "bogus_encoding");
}

void test_delete(const harness::TempDir &tmp) {
    const std::string url = tmp.url("a");
    const cv::Volume vol = cv::Volume::open(url);
    const cv::Box cell{{-3, 5, 10}, {13, 21, 18}};
    EXPECT_THROW(cv::InvalidArgument, "delete off the chunk grid", vol.delete_chunks(0, cv::Box{{0, 5, 10}, {13, 21, 18}}),
                 CV_ERR_INVALID_ARGUMENT, "aligned");
    vol.delete_chunks(0, cell);
    std::vector<std::uint8_t> want(36, 1);
    want[0] = 0;
    CHECK(vol.chunks_exist(0, A_BOUNDS) == want, "first chunk deleted");
    EXPECT_THROW(cv::NotFound, "read of a deleted chunk", vol.cutout<std::uint16_t>(0, cv::Box{{0, 10, 12}, {20, 30, 20}}),
                 CV_ERR_NOT_FOUND, "-3-13_5-21_10-18");
    EXPECT_THROW(cv::NotFound, "C-order read of a deleted chunk",
                 vol.cutout<std::uint16_t>(0, cv::Box{{0, 10, 12}, {20, 30, 20}}, cv::Order::C), CV_ERR_NOT_FOUND,
                 "-3-13_5-21_10-18");
    EXPECT_THROW(cv::NotFound, "point in a deleted chunk", vol.scattered_points<std::uint16_t>(0, {{0, 6, 11}}),
                 CV_ERR_NOT_FOUND, "-3-13_5-21_10-18");
    const cv::Volume fill = cv::Volume::open(url, cv::Options().fill_missing(true).background_color(9));
    CHECK(mismatches(fill.cutout<std::uint16_t>(0, cv::Box{{0, 10, 12}, {20, 30, 20}}, cv::Order::C),
                     [](auto x, auto y, auto z, auto c) {
                         return (x < 13 && y < 21 && z < 18) ? std::uint16_t{9} : pattern(x, y, z, c);
                     }) == 0,
          "fill_missing reads the deleted chunk as background 9");
    const cv::Volume unb = cv::Volume::open(url, cv::Options().bounded(false).background_color(7));
    CHECK(mismatches(unb.cutout<std::uint16_t>(0, cv::Box{{40, 38, 25}, {52, 50, 35}}, cv::Order::C),
                     [](auto x, auto y, auto z, auto c) {
                         return (x < 47 && y < 45 && z < 30) ? pattern(x, y, z, c) : std::uint16_t{7};
                     }) == 0,
          "unbounded read past the high corner");
}

void test_add_scale_and_compression(const harness::TempDir &tmp) {
    // A constant uint8 layer with 3 channels: every downsampled voxel keeps its channel's value.
    cv::InfoSpec spec;
    spec.data_type = cv::DataType::uint8;
    spec.num_channels = 3;
    spec.resolution = {8, 8, 40};
    spec.voxel_offset = {-5, 3, 0};
    spec.size = {64, 48, 16};
    spec.chunk_size = {32, 32, 16};
    for (const auto &[name, comp, suffix] : {std::tuple<const char *, cv::Compression, const char *>{"gz", cv::Compression::gzip, ".gz"},
                                            {"zstd", cv::Compression::zstd, ".zstd"},
                                            {"plain", cv::Compression::none, ""}}) {
        const std::string dir = tmp.path() + "/b_" + name;
        cv::Volume vol = cv::Volume::create("file://" + dir, cv::new_info(spec), cv::Options().compress(comp));
        const cv::Box all = vol.bounds(0);
        cv::Array<std::uint8_t> a(all, 3, cv::Order::C);
        const cv::Vec3i s = all.shape();
        for (std::size_t x = 0; x < static_cast<std::size_t>(s[0]); x++)
            for (std::size_t y = 0; y < static_cast<std::size_t>(s[1]); y++)
                for (std::size_t z = 0; z < static_cast<std::size_t>(s[2]); z++)
                    for (std::size_t c = 0; c < 3; c++) a(x, y, z, c) = static_cast<std::uint8_t>(10 * c + 7);
        vol.write(0, a);
        const std::vector<std::string> chunks = files_named(dir, "_");
        bool suffixed = !chunks.empty();
        for (const auto &path : chunks) {
            const std::string f = fs::path(path).filename().string();
            const std::size_t dot = f.find('.');
            if ((dot == std::string::npos ? std::string() : f.substr(dot)) != suffix) suffixed = false;
        }
        CHECK(suffixed, name << ": " << chunks.size() << " chunk files, expected suffix \"" << suffix << "\"");
        CHECK(vol.cutout<std::uint8_t>(0, all, cv::Order::C).release() == std::vector<std::uint8_t>(a.begin(), a.end()),
              name << ": read back");
        if (std::string(name) != "gz") continue;

        const std::uint32_t mip = vol.add_scale({2, 2, 1});
        CHECK(mip == 1 && vol.num_mips() == 2, "add_scale gives mip " << mip);
        CHECK((vol.bounds(1) == cv::Box{{-3, 1, 0}, {30, 26, 16}}), "mip 1 bounds " << vol.bounds(1).str());
        CHECK((vol.resolution(1) == cv::Vec3d{16, 16, 40}), "mip 1 resolution");
        CHECK(vol.chunk_size(1) == spec.chunk_size, "mip 1 chunk size");
        // add_scale writes the info only (as cloud-volume's): the new scale has no chunks yet.
        EXPECT_THROW(cv::NotFound, "read of a new, empty scale", vol.cutout<std::uint8_t>(1, vol.bounds(1)),
                     CV_ERR_NOT_FOUND, "16_16_40");
        cv::Array<std::uint8_t> m1(vol.bounds(1), 3);
        for (std::size_t i = 0; i < m1.size(); i++) m1.data()[i] = static_cast<std::uint8_t>(i * 31);
        vol.write(1, m1);
        CHECK(vol.cutout<std::uint8_t>(1, vol.bounds(1)).release() == m1.release(), "mip 1 written and read back");
        const std::uint32_t m2 = vol.add_scale({4, 4, 2}, cv::Vec3i{8, 8, 8});
        CHECK(m2 == 2 && vol.chunk_size(2) == (cv::Vec3i{8, 8, 8}), "add_scale with a chunk size");
        // Another handle sees the new scales.
        CHECK(cv::Volume::open("file://" + dir).num_mips() == 3, "reopened layer has 3 mips");
    }
}

void test_error_paths(const harness::TempDir &tmp) {
    const std::string url = tmp.url("a");
    const cv::Volume vol = cv::Volume::open(url, cv::Options().parallel(2));
    const cv::Box box{{0, 10, 12}, {5, 13, 20}};
    const std::size_t n = static_cast<std::size_t>(box.voxels()) * 2;  // 240 elements, 480 bytes
    std::vector<std::uint16_t> buf(n);

    // Opening.
    EXPECT_THROW(cv::NotFound, "open an absent layer", cv::Volume::open(tmp.url("absent-layer")), CV_ERR_NOT_FOUND,
                 "absent-layer");
    EXPECT_THROW(cv::InvalidArgument, "open with an unknown option", cv::Volume::open_json(url, "{\"fill_mising\": true}"),
                 CV_ERR_INVALID_ARGUMENT, "fill_mising");
    EXPECT_THROW(cv::InvalidArgument, "open with options that are not JSON", cv::Volume::open_json(url, "{bounded: false"),
                 CV_ERR_INVALID_ARGUMENT, "JSON");
    EXPECT_THROW(cv::InvalidArgument, "open with parallel 0", cv::Volume::open(url, cv::Options().set("parallel", "0")),
                 CV_ERR_INVALID_ARGUMENT, "parallel");
    EXPECT_THROW(cv::InvalidArgument, "open with a bad endpoint", cv::Volume::open(url, cv::Options().gs_endpoint("ftp://x")),
                 CV_ERR_INVALID_ARGUMENT, "gs_endpoint", "ftp://x");
    EXPECT_THROW(cv::Unsupported, "open an n5:// path", cv::Volume::open("n5://https://example.org/c/e/ch"),
                 CV_ERR_UNSUPPORTED, "n5");
    EXPECT_THROW(cv::InvalidArgument, "open a malformed graphene:// path", cv::Volume::open("graphene://https://example.org/seg"),
                 CV_ERR_INVALID_ARGUMENT, "graphene path");
    EXPECT_THROW(cv::IoError, "open over a refused connection",
                 cv::Volume::open("http://127.0.0.1:9/layer", cv::Options().max_attempts(1).timeout(5)), CV_ERR_IO,
                 "127.0.0.1:9");
    EXPECT_THROW(cv::DecodeError, "create from a bad info", cv::Volume::create(tmp.url("bad-info"), "{\"scales\": []}"),
                 CV_ERR_DECODE, "bad-info", "type");

    // Unknown mips.
    EXPECT_THROW(cv::InvalidArgument, "bounds(7)", vol.bounds(7), CV_ERR_INVALID_ARGUMENT, "mip 7");
    EXPECT_THROW(cv::InvalidArgument, "chunk_size(7)", vol.chunk_size(7), CV_ERR_INVALID_ARGUMENT, "mip 7");
    EXPECT_THROW(cv::InvalidArgument, "resolution(7)", vol.resolution(7), CV_ERR_INVALID_ARGUMENT, "mip 7");
    EXPECT_THROW(cv::InvalidArgument, "encoding(7)", vol.encoding(7), CV_ERR_INVALID_ARGUMENT, "mip 7");
    EXPECT_THROW(cv::InvalidArgument, "cutout at mip 7", vol.cutout<std::uint16_t>(7, box), CV_ERR_INVALID_ARGUMENT, "mip 7");
    EXPECT_THROW(cv::InvalidArgument, "C-order cutout at mip 7", vol.cutout<std::uint16_t>(7, box, cv::Order::C),
                 CV_ERR_INVALID_ARGUMENT, "mip 7");
    EXPECT_THROW(cv::InvalidArgument, "points at mip 7", vol.scattered_points<std::uint16_t>(7, {{0, 10, 12}}),
                 CV_ERR_INVALID_ARGUMENT, "mip 7");
    EXPECT_THROW(cv::InvalidArgument, "chunks_exist at mip 7", vol.chunks_exist(7, box), CV_ERR_INVALID_ARGUMENT, "mip 7");

    // Boxes.
    EXPECT_THROW(cv::OutOfBounds, "cutout past the bounds", vol.cutout<std::uint16_t>(0, cv::Box{{40, 10, 12}, {50, 13, 20}}),
                 CV_ERR_OUT_OF_BOUNDS, "40,10,12", "bounds");
    EXPECT_THROW(cv::OutOfBounds, "C-order cutout past the bounds",
                 vol.cutout<std::uint16_t>(0, cv::Box{{40, 10, 12}, {50, 13, 20}}, cv::Order::C), CV_ERR_OUT_OF_BOUNDS,
                 "40,10,12");
    EXPECT_THROW(cv::OutOfBounds, "point outside the bounds", vol.scattered_points<std::uint16_t>(0, {{0, 10, 12}, {47, 10, 12}}),
                 CV_ERR_OUT_OF_BOUNDS, "47");
    EXPECT_THROW(cv::InvalidArgument, "inverted box", vol.cutout<std::uint16_t>(0, cv::Box{{5, 10, 12}, {0, 13, 20}}),
                 CV_ERR_INVALID_ARGUMENT, "box");
    EXPECT_THROW(cv::InvalidArgument, "empty box", vol.cutout<std::uint16_t>(0, cv::Box{{0, 10, 12}, {5, 10, 20}}, cv::Order::C),
                 CV_ERR_INVALID_ARGUMENT, "box");

    // Element types and lengths.
    EXPECT_THROW(cv::TypeMismatch, "cutout<float> of uint16", vol.cutout<float>(0, box), CV_ERR_INVALID_ARGUMENT,
                 "cutout<float32>", "uint16");
    std::vector<std::int16_t> wrong(n);
    EXPECT_THROW(cv::TypeMismatch, "cutout_into<int16>", vol.cutout_into(0, box, wrong), CV_ERR_INVALID_ARGUMENT,
                 "cutout_into<int16>", "uint16");
    EXPECT_THROW(cv::TypeMismatch, "scattered_points<uint64>", vol.scattered_points<std::uint64_t>(0, {{0, 10, 12}}),
                 CV_ERR_INVALID_ARGUMENT, "uint64", "uint16");
    EXPECT_THROW(cv::InvalidArgument, "cutout_into a short buffer", vol.cutout_into(0, box, buf.data(), n - 1),
                 CV_ERR_INVALID_ARGUMENT, "480", "478");
    EXPECT_THROW(cv::InvalidArgument, "cutout_into a long buffer", vol.cutout_into(0, box, buf.data(), n + 3),
                 CV_ERR_INVALID_ARGUMENT, "480", "486");
    EXPECT_THROW(cv::InvalidArgument, "cutout_into_bytes(NULL)", vol.cutout_into_bytes(0, box, nullptr, 480),
                 CV_ERR_INVALID_ARGUMENT, "buf");

    // Strided layouts.
    const cv::Strides c_order = cv::dense_strides(box.shape(), 2, cv::Order::C);
    vol.cutout_into(0, box, buf, c_order);  // fine
    EXPECT_THROW(cv::InvalidArgument, "zero stride", vol.cutout_into(0, box, buf, cv::Strides{48, 0, 2, 1}),
                 CV_ERR_INVALID_ARGUMENT, "stride 0 along y");
    EXPECT_THROW(cv::InvalidArgument, "negative stride", vol.cutout_into(0, box, buf, cv::Strides{-48, 16, 2, 1}),
                 CV_ERR_INVALID_ARGUMENT, "-96", "along x");
    EXPECT_THROW(cv::InvalidArgument, "overlapping strides", vol.cutout_into(0, box, buf, cv::Strides{1, 5, 10, 1}),
                 CV_ERR_INVALID_ARGUMENT, "overlap");
    EXPECT_THROW(cv::InvalidArgument, "strided buffer too short", vol.cutout_into(0, box, buf.data(), n - 1, c_order),
                 CV_ERR_INVALID_ARGUMENT, "478", "480");
    EXPECT_THROW(cv::InvalidArgument, "strides reaching past the buffer",
                 vol.cutout_into(0, box, buf, cv::Strides{49, 16, 2, 1}), CV_ERR_INVALID_ARGUMENT, "buf_len is 480", "488");
    EXPECT_THROW(cv::InvalidArgument, "strides overflowing in bytes",
                 vol.cutout_into(0, box, buf, cv::Strides{std::numeric_limits<std::int64_t>::max() / 2 + 1, 16, 2, 1}),
                 CV_ERR_INVALID_ARGUMENT, "overflows");
    EXPECT_THROW(cv::InvalidArgument, "byte strides not a whole element apart",
                 vol.cutout_into_bytes(0, box, buf.data(), 2 * n, cv::Strides{96, 32, 4, 1}), CV_ERR_INVALID_ARGUMENT,
                 "overlap");

    // A corrupt chunk: a raw chunk file with the wrong length.
    {
        cv::InfoSpec spec;
        spec.size = {16, 16, 16};
        spec.chunk_size = {16, 16, 16};
        const std::string dir = tmp.path() + "/corrupt";
        const cv::Volume c = cv::Volume::create("file://" + dir, cv::new_info(spec), cv::Options().compress(cv::Compression::none));
        c.write(0, cv::Array<std::uint8_t>(c.bounds(0), 1));
        const auto files = files_named(dir, "0-16_0-16_0-16");
        CHECK(files.size() == 1, "one chunk file, found " << files.size());
        if (!files.empty()) harness::write_file(files[0], "not a chunk");
        EXPECT_THROW(cv::DecodeError, "read a corrupt chunk", c.cutout<std::uint8_t>(0, c.bounds(0)), CV_ERR_DECODE,
                     "0-16_0-16_0-16");
    }

    // Moved-from and closed volumes.
    cv::Volume a = cv::Volume::open(url);
    cv::Volume b = std::move(a);
    CHECK(!a && static_cast<bool>(b), "move leaves the source empty");
    EXPECT_THROW(cv::InvalidArgument, "use of a moved-from Volume", a.num_channels(), CV_ERR_INVALID_ARGUMENT, "moved from");
    a = cv::Volume::open(url, cv::Options().mip(0));  // assign into the empty one
    b = std::move(a);                                  // the old b is released here
    CHECK(b.num_channels() == 2, "moved-assigned Volume works");
    b.close();
    b.close();
    EXPECT_THROW(cv::InvalidArgument, "use of a closed Volume", b.cutout<std::uint16_t>(0, box), CV_ERR_INVALID_ARGUMENT,
                 "closed");
    cv::Volume r = cv::Volume::open(url);
    cv_volume *raw = r.release();
    CHECK(!r && raw != nullptr, "release()");
    cv::Volume adopted(raw);
    CHECK(adopted.default_mip() == 0, "adopted handle works");

    // The classes catch as their bases, with code and name.
    try {
        (void)cv::Volume::open(tmp.url("absent-layer"));
        CHECK(false, "no exception");
    } catch (const std::runtime_error &e) {
        const auto *ce = dynamic_cast<const cv::Error *>(&e);
        CHECK(ce != nullptr && ce->code() == CV_ERR_NOT_FOUND && std::string(ce->code_name()) == "CV_ERR_NOT_FOUND",
              "catch as std::runtime_error");
    }
}

void test_threads(const harness::TempDir &tmp) {
    const cv::Volume vol = cv::Volume::open(tmp.url("a"));
    std::atomic<int> bad{0}, errors{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; t++)
        threads.emplace_back([&, t]() {
            std::uint64_t r = 0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(t + 1);
            auto next = [&](std::int64_t lo, std::int64_t hi) {
                r ^= r << 13;
                r ^= r >> 7;
                r ^= r << 17;
                return lo + static_cast<std::int64_t>(r % static_cast<std::uint64_t>(hi - lo));
            };
            for (int i = 0; i < 12; i++) {
                cv::Box b;
                for (int d = 0; d < 3; d++) {
                    b.lo[d] = next(A_BOUNDS.lo[d], A_BOUNDS.hi[d]);
                    b.hi[d] = next(b.lo[d] + 1, A_BOUNDS.hi[d] + 1);
                }
                try {
                    if (mismatches(vol.cutout<std::uint16_t>(0, b, i % 2 ? cv::Order::C : cv::Order::F), pattern) != 0) bad++;
                    // An error on this thread must not leak into another thread's message.
                    (void)vol.cutout<std::uint16_t>(9, b);
                    errors++;
                } catch (const cv::InvalidArgument &e) {
                    if (std::string(e.what()).find("mip 9") == std::string::npos) bad++;
                } catch (const std::exception &) {
                    errors++;
                }
            }
        });
    for (auto &th : threads) th.join();
    CHECK(bad == 0 && errors == 0, "threads: " << bad << " wrong reads or messages, " << errors << " unexpected errors");
}

/// Label operations on a uint64 compressed_segmentation layer written here: unique, masks,
/// renumbering, point boxes and chunk files, each checked against a cutout.
void test_labels(const harness::TempDir &tmp) {
    cv::InfoSpec spec;
    spec.layer_type = "segmentation";
    spec.data_type = cv::DataType::uint64;
    spec.encoding = "compressed_segmentation";
    spec.resolution = {8, 8, 40};
    spec.voxel_offset = {-4, 2, 0};
    spec.size = {40, 30, 12};
    spec.chunk_size = {16, 16, 8};
    const cv::Box all{{-4, 2, 0}, {36, 32, 12}};
    cv::Volume vol = cv::Volume::create(tmp.url("labels"), cv::new_info(spec));
    cv::Array<std::uint64_t> src(all, 1);
    for (std::int64_t z = 0; z < 12; z++)
        for (std::int64_t y = 0; y < 30; y++)
            for (std::int64_t x = 0; x < 40; x++)
                src(static_cast<std::size_t>(x), static_cast<std::size_t>(y), static_cast<std::size_t>(z), 0) =
                    (x / 5 + 8 * (y / 7) + 64 * (z / 3)) % 23 == 0 ? 0 : 1000000000000ull + static_cast<std::uint64_t>((x / 5) * 31 + (y / 7) * 7 + z / 3);
    vol.write(0, src);
    const cv::Box box{{-1, 5, 1}, {30, 31, 11}};
    const cv::Array<std::uint64_t> cut = vol.cutout<std::uint64_t>(0, box);
    std::map<std::uint64_t, std::uint64_t> model;
    for (std::uint64_t v : cut) model[v]++;

    const auto u = vol.unique(0, box);
    CHECK(u.labels.size() == model.size() && u.labels.size() > 5, "unique: " << u.labels.size() << " labels");
    bool same = u.labels.size() == model.size();
    std::size_t i = 0;
    for (const auto &kv : model) {
        if (i < u.labels.size() && (u.labels[i] != kv.first || u.counts[i] != kv.second)) same = false;
        i++;
    }
    CHECK(same, "unique labels and counts equal the cutout's");

    const std::uint64_t pick = u.labels.back();
    const auto mask = vol.label_mask(0, box, {pick, 7});
    std::size_t wrong = 0;
    for (std::size_t k = 0; k < cut.size(); k++)
        if (mask[k] != (cut.data()[k] == pick ? 1 : 0)) wrong++;
    CHECK(mask.size() == cut.size() && wrong == 0, "label_mask: " << wrong << " wrong voxels");

    const auto r = vol.renumber(0, box);
    CHECK(r.dtype == cv::DataType::uint8 && r.data.size() == cut.size() && r.labels[0] == 0, "renumber type and size");
    wrong = 0;
    for (std::size_t k = 0; k < cut.size(); k++)
        if (r.labels.at(r.data[k]) != cut.data()[k]) wrong++;
    CHECK(wrong == 0, "renumbered voxels map back: " << wrong << " wrong");

    const cv::Box pb = vol.point_box(0, {10.0, 20.0, 5.0}, {8, 8, 1});
    CHECK((pb == cv::Box{{6, 16, 5}, {14, 24, 6}}), "point_box " << pb.str());
    const cv::Vec3d cr{4, 4, 40};
    const cv::Box pb2 = vol.point_box(0, {10.0, 20.0, 5.0}, {4, 4, 2}, cr);
    CHECK((pb2 == cv::Box{{3, 8, 4}, {7, 12, 6}}), "point_box with coord_resolution " << pb2.str());
    const auto pt = vol.download_point<std::uint64_t>(0, {10.0, 20.0, 5.0}, {8, 8, 1});
    CHECK(pt.box() == pb && pt.data()[0] == src(10, 14, 5, 0), "download_point reads the point box");

    const auto files = vol.download_files(0, cv::Box{{-4, 2, 0}, {20, 18, 8}});
    CHECK(files.size() == 2 && files[1].name == "8_8_40/12-28_2-18_0-8" && files[0].name == "8_8_40/-4-12_2-18_0-8", "download_files names: " << files.size()
          << (files.empty() ? std::string() : " " + files[0].name));

    EXPECT_THROW(cv::OutOfBounds, "unique past the bounds", vol.unique(0, cv::Box{{-9, 2, 0}, {4, 4, 4}}),
                 CV_ERR_OUT_OF_BOUNDS, "outside the bounds", "");
    cv::Volume img = cv::Volume::create(tmp.url("labels_img"), a_info());
    EXPECT_THROW(cv::InvalidArgument, "unique on uint16", img.unique(0, cv::Box{{0, 10, 12}, {4, 14, 16}}),
                 CV_ERR_INVALID_ARGUMENT, "uint32 or uint64", "uint16");
    EXPECT_THROW(cv::InvalidArgument, "renumber on uint16", img.renumber(0, cv::Box{{0, 10, 12}, {4, 14, 16}}),
                 CV_ERR_INVALID_ARGUMENT, "uint16");
    EXPECT_THROW(cv::TypeMismatch, "download_point<uint8> of a uint64 layer",
                 vol.download_point<std::uint8_t>(0, {10.0, 20.0, 5.0}, {2, 2, 1}), CV_ERR_INVALID_ARGUMENT, "uint64");
}

/// Label operations on a raw, gzip-compressed uint32 layer with a second scale (add_scale, then
/// written here): more than 255 labels (renumbered to uint16), mip 1, unique without counts,
/// masks of several labels, chunk files as stored and decompressed, a missing chunk. Every
/// expectation comes from a cutout or the written array.
void test_labels_uint32(const harness::TempDir &tmp) {
    cv::InfoSpec spec;
    spec.layer_type = "segmentation";
    spec.data_type = cv::DataType::uint32;
    spec.resolution = {4, 4, 40};
    spec.voxel_offset = A_BOUNDS.lo;
    spec.size = A_BOUNDS.shape();
    spec.chunk_size = A_CHUNK;
    cv::Volume vol = cv::Volume::create(tmp.url("labels32"), cv::new_info(spec), cv::Options().compress(cv::Compression::gzip));
    const std::uint32_t m1 = vol.add_scale({2, 2, 1});
    auto label = [](std::int64_t x, std::int64_t y, std::int64_t z) -> std::uint32_t {
        const std::int64_t k = (x + 8) / 2 + 25 * ((y + 8) / 2) + 500 * ((z + 8) / 4);
        return k % 13 == 0 ? 0u : static_cast<std::uint32_t>(70000 + k);
    };
    for (std::uint32_t mip = 0; mip <= m1; mip++) {
        const cv::Box b = vol.bounds(mip);
        cv::Array<std::uint32_t> a(b, 1);
        const cv::Vec3i sh = b.shape();
        for (std::int64_t z = 0; z < sh[2]; z++)
            for (std::int64_t y = 0; y < sh[1]; y++)
                for (std::int64_t x = 0; x < sh[0]; x++)
                    a(static_cast<std::size_t>(x), static_cast<std::size_t>(y), static_cast<std::size_t>(z), 0) =
                        mip == 0 ? label(b.lo[0] + x, b.lo[1] + y, b.lo[2] + z) : label(3 * (b.lo[0] + x), 5 * (b.lo[1] + y), b.lo[2] + z);
        vol.write(mip, a);
    }
    const cv::Box box{{0, 8, 12}, {31, 41, 26}};
    const cv::Array<std::uint32_t> cut = vol.cutout<std::uint32_t>(0, box);
    std::map<std::uint64_t, std::uint64_t> model;
    for (std::uint32_t v : cut) model[v]++;

    const auto u = vol.unique(0, box.lo, box.hi);
    std::vector<std::uint64_t> want_l, want_c;
    for (const auto &kv : model) {
        want_l.push_back(kv.first);
        want_c.push_back(kv.second);
    }
    CHECK(u.labels == want_l && u.counts == want_c && want_l.size() > 300,
          "uint32 unique: " << u.labels.size() << " labels, want " << want_l.size());
    const auto only = vol.unique(0, box, false);
    CHECK(only.labels == want_l && only.counts.empty(), "unique without counts: " << only.counts.size() << " counts");

    // mip 1: its own data, not mip 0's.
    const cv::Box b1{{0, 5, 12}, {11, 20, 26}};
    const cv::Array<std::uint32_t> cut1 = vol.cutout<std::uint32_t>(m1, b1);
    std::map<std::uint64_t, std::uint64_t> model1;
    for (std::uint32_t v : cut1) model1[v]++;
    const auto u1 = vol.unique(m1, b1);
    bool same1 = u1.labels.size() == model1.size();
    std::size_t i = 0;
    for (const auto &kv : model1) {
        if (same1 && (u1.labels[i] != kv.first || u1.counts[i] != kv.second)) same1 = false;
        i++;
    }
    CHECK(same1 && u1.labels != vol.unique(0, b1).labels, "unique at mip 1 follows mip 1's cutout");

    // Masks: several labels (0 among them), none.
    const std::uint64_t a_label = want_l[want_l.size() / 2], b_label = want_l.back();
    const auto mask = vol.label_mask(0, box, {a_label, 0, b_label, 123456789});
    std::size_t wrong = 0, ones = 0;
    for (std::size_t k = 0; k < cut.size(); k++) {
        const std::uint32_t v = cut.data()[k];
        const std::uint8_t want = (v == a_label || v == 0 || v == b_label) ? 1 : 0;
        if (mask[k] != want) wrong++;
        ones += mask[k];
    }
    CHECK(mask.size() == cut.size() && wrong == 0 && ones == model[a_label] + model[0] + model[b_label],
          "label_mask of 3 labels: " << wrong << " wrong voxels");
    const auto none = vol.label_mask(m1, b1, {});
    CHECK(none.size() == cut1.size() && std::count(none.begin(), none.end(), 0) == static_cast<std::ptrdiff_t>(none.size()),
          "label_mask of no labels is all 0");

    // Renumbering: > 255 labels need uint16; labels ascend, 0 stays 0.
    const auto r = vol.renumber(0, box);
    CHECK(r.dtype == cv::DataType::uint16 && r.size() == cut.size() && r.data.size() == 2 * cut.size(),
          "renumber to uint16: " << cv::name(r.dtype) << ", " << r.size() << " elements");
    CHECK(r.labels.size() == want_l.size() + (model.count(0) ? 0 : 1) && r.labels[0] == 0 &&
              std::is_sorted(r.labels.begin(), r.labels.end()),
          "renumber labels: " << r.labels.size());
    wrong = 0;
    for (std::size_t k = 0; k < cut.size(); k++)
        if (r.original(k) != cut.data()[k] || (cut.data()[k] == 0) != (r.value(k) == 0)) wrong++;
    CHECK(wrong == 0, "uint16 renumbered voxels map back: " << wrong << " wrong");
    EXPECT_THROW(cv::InvalidArgument, "Renumbered::value past the end", r.value(r.size()), CV_ERR_INVALID_ARGUMENT, "out of range");
    const auto r1 = vol.renumber(m1, b1);
    wrong = 0;
    for (std::size_t k = 0; k < cut1.size(); k++)
        if (r1.original(k) != cut1.data()[k]) wrong++;
    CHECK(r1.size() == cut1.size() && wrong == 0, "renumber at mip 1: " << wrong << " wrong");

    // Points at mip 1 (mip 0 voxels, halved in x and y) and in another resolution; C order.
    const cv::Box pb = vol.point_box(m1, {20.0, 30.0, 15.0}, {4, 6, 1});
    CHECK((pb == cv::Box{{8, 12, 15}, {12, 18, 16}}), "point_box at mip 1: " << pb.str());
    const auto p = vol.download_point<std::uint32_t>(m1, {20.0, 30.0, 15.0}, {4, 6, 1}, std::nullopt, cv::Order::C);
    const cv::Array<std::uint32_t> pc = vol.cutout<std::uint32_t>(m1, pb);
    CHECK(p.order() == cv::Order::C && p.box() == pb && p(3, 5, 0) == pc(3, 5, 0) && p(1, 2, 0) == pc(1, 2, 0),
          "download_point at mip 1 in C order");
    const cv::Box pr = vol.point_box(0, {10.0, 15.0, 15.0}, {2, 2, 2}, cv::Vec3d{8, 8, 40});
    CHECK((pr == cv::Box{{19, 29, 14}, {21, 31, 16}}), "point_box with coord_resolution: " << pr.str());

    // Chunk files: decompressed raw chunks are the cutout's bytes; as stored they are gzip.
    const cv::Box first{{-3, 5, 10}, {13, 21, 18}};
    const auto files = vol.download_files(0, first);
    const cv::Array<std::uint32_t> chunk = vol.cutout<std::uint32_t>(0, first);
    CHECK(files.size() == 1 && files[0].name == "4_4_40/-3-13_5-21_10-18" && files[0].data.size() == chunk.size() * 4 &&
              std::memcmp(files[0].data.data(), chunk.data(), files[0].data.size()) == 0,
          "download_files: the decompressed chunk equals the cutout");
    const auto gz = vol.download_files(0, first, false);
    CHECK(gz.size() == 1 && gz[0].data.size() > 2 && gz[0].data[0] == 0x1f && gz[0].data[1] == 0x8b,
          "download_files(decompress=false) gives the gzip file");
    const cv::Box two{{-3, 5, 10}, {14, 21, 18}};
    CHECK(vol.download_files(0, two).size() == 2, "two chunks");
    vol.delete_chunks(0, first);
    const auto after = vol.download_files(0, two);
    CHECK(after.size() == 1 && after[0].name == "4_4_40/13-29_5-21_10-18", "a missing chunk is left out: " << after.size());
    // mip 1's first chunk, named by its own scale key and grid.
    const cv::Box bm = vol.bounds(m1);
    const cv::Vec3i cm = vol.chunk_size(m1);
    const cv::Box c1{bm.lo, {std::min(bm.lo[0] + cm[0], bm.hi[0]), std::min(bm.lo[1] + cm[1], bm.hi[1]),
                             std::min(bm.lo[2] + cm[2], bm.hi[2])}};
    const std::string name1 = "8_8_40/" + std::to_string(c1.lo[0]) + "-" + std::to_string(c1.hi[0]) + "_" +
                              std::to_string(c1.lo[1]) + "-" + std::to_string(c1.hi[1]) + "_" + std::to_string(c1.lo[2]) +
                              "-" + std::to_string(c1.hi[2]);
    const auto f1 = vol.download_files(m1, cv::Box{bm.lo, {bm.lo[0] + 1, bm.lo[1] + 1, bm.lo[2] + 1}});
    const cv::Array<std::uint32_t> chunk1 = vol.cutout<std::uint32_t>(m1, c1);
    CHECK(f1.size() == 1 && f1[0].name == name1 && f1[0].data.size() == chunk1.size() * 4 &&
              std::memcmp(f1[0].data.data(), chunk1.data(), f1[0].data.size()) == 0,
          "download_files at mip 1: " << (f1.empty() ? std::string("none") : f1[0].name) << ", want " << name1);
}

/// Sorted (label, count) pairs of every element (every channel) of `a`.
template <class T> std::map<std::uint64_t, std::uint64_t> count_labels(const cv::Array<T> &a) {
    std::map<std::uint64_t, std::uint64_t> m;
    for (T v : a) m[v]++;
    return m;
}

bool same_counts(const cv::Volume::Labels &u, const std::map<std::uint64_t, std::uint64_t> &model) {
    if (u.labels.size() != model.size() || u.counts.size() != model.size()) return false;
    std::size_t i = 0;
    for (const auto &kv : model) {
        if (u.labels[i] != kv.first || u.counts[i] != kv.second) return false;
        i++;
    }
    return true;
}

/// Label operations on a two-channel uint32 layer (every channel counted, masked and
/// renumbered, in Fortran order with the channel slowest), masks into the caller's buffer, the
/// background of an unbounded handle (outside voxels count as background_color), and the
/// graphene options passed through to the library. Expectations come from cutouts.
void test_labels_channels(const harness::TempDir &tmp) {
    cv::InfoSpec spec;
    spec.layer_type = "segmentation";
    spec.data_type = cv::DataType::uint32;
    spec.num_channels = 2;
    spec.resolution = {4, 4, 40};
    spec.voxel_offset = A_BOUNDS.lo;
    spec.size = A_BOUNDS.shape();
    spec.chunk_size = A_CHUNK;
    const std::string url = tmp.url("labels_c2");
    cv::Volume vol = cv::Volume::create(url, cv::new_info(spec));
    // Channel 1 is channel 0 moved by 4 voxels in x: the channels share most labels.
    auto label = [](std::int64_t x, std::int64_t y, std::int64_t z, std::size_t c) -> std::uint32_t {
        const std::int64_t k = (x + 4 * static_cast<std::int64_t>(c) + 8) / 3 + 20 * ((y + 8) / 4) + 400 * ((z + 8) / 3);
        return k % 11 == 0 ? 0u : static_cast<std::uint32_t>(1000 + k);
    };
    cv::Array<std::uint32_t> src(A_BOUNDS, 2);
    const cv::Vec3i sh = A_BOUNDS.shape();
    for (std::size_t c = 0; c < 2; c++)
        for (std::int64_t z = 0; z < sh[2]; z++)
            for (std::int64_t y = 0; y < sh[1]; y++)
                for (std::int64_t x = 0; x < sh[0]; x++)
                    src(static_cast<std::size_t>(x), static_cast<std::size_t>(y), static_cast<std::size_t>(z), c) =
                        label(A_BOUNDS.lo[0] + x, A_BOUNDS.lo[1] + y, A_BOUNDS.lo[2] + z, c);
    vol.write(0, src);

    const cv::Box box{{0, 8, 12}, {20, 30, 22}};
    const cv::Array<std::uint32_t> cut = vol.cutout<std::uint32_t>(0, box);
    const auto model = count_labels(cut);
    const auto u = vol.unique(0, box);
    std::uint64_t total = 0;
    for (std::uint64_t n : u.counts) total += n;
    CHECK(same_counts(u, model) && total == 2 * static_cast<std::uint64_t>(box.voxels()),
          "unique over both channels: " << u.labels.size() << " labels, " << total << " voxels");
    std::map<std::uint64_t, std::uint64_t> only0;
    for (std::size_t k = 0; k < cut.size() / 2; k++) only0[cut.data()[k]]++;
    CHECK(only0.size() < model.size(), "channel 1 has labels channel 0 lacks (" << only0.size() << " of " << model.size() << ")");

    // Masks into the caller's buffer: a vector of exactly voxels x channels bytes; a wrong
    // length is refused before any I/O.
    const std::uint64_t a_label = u.labels[u.labels.size() / 3], b_label = u.labels.back();
    std::vector<std::uint8_t> buf(cut.size(), 7);
    vol.label_mask_into(0, box, {a_label, b_label}, buf);
    std::size_t wrong = 0, ones1 = 0;
    for (std::size_t k = 0; k < cut.size(); k++) {
        const std::uint32_t v = cut.data()[k];
        if (buf[k] != ((v == a_label || v == b_label) ? 1 : 0)) wrong++;
        if (k >= cut.size() / 2) ones1 += buf[k];
    }
    std::uint64_t want1 = 0;
    for (std::size_t k = cut.size() / 2; k < cut.size(); k++)
        want1 += (cut.data()[k] == a_label || cut.data()[k] == b_label) ? 1 : 0;
    CHECK(wrong == 0 && ones1 == want1 && want1 > 0, "label_mask_into, 2 channels: " << wrong << " wrong, channel 1 has "
                                                                                        << ones1 << " of " << want1);
    CHECK(vol.label_mask(0, box, {a_label, b_label}) == buf, "label_mask equals label_mask_into");
    std::vector<std::uint8_t> raw(cut.size());
    vol.label_mask_into(0, box, {a_label}, raw.data(), raw.size());
    std::size_t ones = 0;
    for (std::uint8_t b : raw) ones += b;
    CHECK(ones == model.at(a_label), "label_mask_into a pointer: " << ones << " ones, want " << model.at(a_label));
    std::vector<std::uint8_t> short_buf(cut.size() - 1);
    EXPECT_THROW(cv::InvalidArgument, "label_mask_into a short buffer", vol.label_mask_into(0, box, {a_label}, short_buf),
                 CV_ERR_INVALID_ARGUMENT, "one byte per voxel and channel", std::to_string(cut.size()));
    std::vector<std::uint8_t> one_channel(static_cast<std::size_t>(box.voxels()));
    EXPECT_THROW(cv::InvalidArgument, "label_mask_into one channel's bytes", vol.label_mask_into(0, box, {a_label}, one_channel),
                 CV_ERR_INVALID_ARGUMENT, "one byte per voxel and channel");

    // Renumbering covers both channels with one numbering.
    const auto r = vol.renumber(0, box);
    wrong = 0;
    for (std::size_t k = 0; k < cut.size(); k++)
        if (r.original(k) != cut.data()[k]) wrong++;
    CHECK(r.size() == cut.size() && wrong == 0 && r.labels.size() == model.size() + (model.count(0) ? 0 : 1),
          "renumber over 2 channels: " << wrong << " wrong of " << r.size());

    // bounded=false: voxels outside the volume are background_color (5) in every operation.
    const cv::Volume ub = cv::Volume::open(url, cv::Options().bounded(false).background_color(5));
    const cv::Box part{{-8, 8, 12}, {2, 12, 14}};  // x -8..-4 is outside: 5 x 4 x 2 voxels, 2 channels
    const cv::Array<std::uint32_t> pcut = ub.cutout<std::uint32_t>(0, part);
    const auto pu = ub.unique(0, part);
    const auto pmodel = count_labels(pcut);
    CHECK(same_counts(pu, pmodel) && pmodel.count(5) && pmodel.at(5) == 5 * 4 * 2 * 2,
          "unique of a box leaving the volume counts background_color: " << (pmodel.count(5) ? pmodel.at(5) : 0));
    const auto pm = ub.label_mask(0, part, {5});
    std::size_t pm_ones = 0;
    for (std::uint8_t b : pm) pm_ones += b;
    CHECK(pm_ones == 80 && pm[0] == 1 && pm[5] == 0, "label_mask of the background outside: " << pm_ones);
    const auto pr = ub.renumber(0, part);
    CHECK(pr.original(0) == 5 && pr.original(5) == pcut(5, 0, 0, 0) && pr.original(pcut.size() - 1) == pcut(9, 3, 1, 1),
          "renumber outside the volume");
    const cv::Box away{{-20, 8, 12}, {-10, 10, 14}};
    const auto au = ub.unique(0, away);
    CHECK(au.labels == std::vector<std::uint64_t>{5} && au.counts == std::vector<std::uint64_t>{10 * 2 * 2 * 2},
          "unique of a box wholly outside: " << au.labels.size() << " labels");
    EXPECT_THROW(cv::OutOfBounds, "label_mask past the bounds when bounded", vol.label_mask(0, part, {5}),
                 CV_ERR_OUT_OF_BOUNDS, "outside the bounds");

    // The graphene options reach the library by their names (a Precomputed layer ignores
    // them; bad values are refused, naming the option).
    const cv::Volume g = cv::Volume::open(
        url, cv::Options().agglomerate(false).timestamp(1700000000.5).stop_layer(2).use_https(true));
    CHECK(g.unique(0, box).labels == u.labels, "graphene options on a Precomputed layer");
    EXPECT_THROW(cv::InvalidArgument, "stop_layer 0", cv::Volume::open(url, cv::Options().stop_layer(0)),
                 CV_ERR_INVALID_ARGUMENT, "stop_layer");
    EXPECT_THROW(cv::InvalidArgument, "negative timestamp", cv::Volume::open(url, cv::Options().timestamp(-1)),
                 CV_ERR_INVALID_ARGUMENT, "timestamp");
}

}  // namespace

int main() {
    std::cout << "cloudvolume " << cv::version() << " (header " << CLOUDVOLUME_VERSION << ")" << std::endl;
    CHECK(cv::version() == CLOUDVOLUME_VERSION, "version");
    test_errors_map();
    test_options_json();
    test_array();
    harness::TempDir tmp("wrapper");
    try {
        test_create_and_read(tmp);
        test_writes(tmp);
        test_threads(tmp);
        test_error_paths(tmp);
        test_delete(tmp);
        test_add_scale_and_compression(tmp);
        test_labels(tmp);
        test_labels_uint32(tmp);
        test_labels_channels(tmp);
    } catch (const cv::Error &e) {
        CHECK(false, "unexpected " << e.code_name() << ": " << e.what());
    }
    return harness::finish("test_wrapper");
}
