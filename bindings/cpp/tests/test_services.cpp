// Volume services through the C++ wrapper, against the loopback doubles scripts/test_cpp.sh
// starts (tests/servers/dvid.py and tests/servers/boss.py, built from DVID's and the BOSS's own
// source), as tests/dvid.rs and tests/boss.rs drive the Rust API:
// - DVID: cloudvolume::dvid_create_repo (every server form, fresh UUIDs, an unreachable server);
//   a uint16 image instance (uint16blk, 32^3 blocks) and a uint64 labelmap instance (64^3) made
//   by Volume::create; an aligned write read back aligned and unaligned (equal to what was
//   written), across the extents and far past them with bounded(false) (zeros outside), the
//   extents as a fresh handle's bounds (a bounded handle refuses past them); C order; unique over
//   the labelmap; an unaligned write refused with the library's message naming the block size
//   (and painted in with non_aligned_writes); an existing name, a float64 image, a labelmap block
//   size that is not a multiple of 16; an unknown instance and node -> NotFound;
// - channel first (pydvid's `cxyz`): an rgba8blk instance (4-channel uint8) read with
//   Volume::cutout_cxyz (Order::CXYZ) element by element against the Fortran cutout and what was
//   written, cutout_into with dense_strides(..., Order::CXYZ), to_order both ways, a CXYZ array
//   written back, one-channel CXYZ = F;
// - BOSS: every case of intern's manifest (tests/reference/boss_intern.py setup: channels img8,
//   img16, ann64 at resolutions 0 and 1) read through boss://http://HOST/col/exp/CHANNEL equals
//   intern's get_cutout bytes; the channel's data type and layer type; unique over ann64; a wrong
//   token -> AuthError naming the host, never the token; an unknown channel -> NotFound.
// - OCP / ndstore: every case of tests/reference/ocp_h5py.py's manifest (h5py's hdf5 posts of
//   uint8, uint16, uint32, uint64 and float32 channels at resolutions 0 and 1, read back by h5py)
//   read through ocp://HOST/ocpref/CHANNEL as npz, raw and hdf5 (OcpFormat) equals h5py's
//   array; a write (npz) read back from ndstore's hdf5 answer; an unknown channel -> NotFound; an
//   ocp_format the library does not read -> Unsupported.
//
// usage: test_services [--quick]   (--quick: one of intern's cases per channel, for valgrind;
//   environment: CV_DVID_SERVER=127.0.0.1:PORT,
//   CV_BOSS_URL_BASE=boss://http://127.0.0.1:PORT/col/exp, CV_BOSS_TOKEN, CV_BOSS_INTERN_DIR (the
//   setup's OUTDIR with manifest.json), CV_OCP_SERVER=127.0.0.1:PORT and CV_OCP_H5PY_DIR (ocp_h5py.py
//   setup's OUT). Without them: a skip (77), a failure with
//   CV_REQUIRE_REFERENCE=1.)
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cloudvolume.hpp"
#include "harness.hpp"

namespace cv = cloudvolume;
using harness::Json;

namespace {

std::string env(const char *name) {
    const char *v = std::getenv(name);
    return v != nullptr ? std::string(v) : std::string();
}

/// A deterministic pseudo-random stream of non-zero values of T.
template <class T> std::vector<T> values(std::size_t n, std::uint64_t seed) {
    std::uint64_t x = seed * 0x9E3779B97F4A7C15ull | 1;
    std::vector<T> out(n);
    for (auto &v : out) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v = static_cast<T>((x >> 24) | 1);
    }
    return out;
}

/// Labels in blobs (some 0, the others past 2^40), over `b`, Fortran order.
std::vector<std::uint64_t> labels(const cv::Box &b, std::uint64_t seed) {
    std::vector<std::uint64_t> out;
    out.reserve(static_cast<std::size_t>(b.voxels()));
    for (std::int64_t z = b.lo[2]; z < b.hi[2]; z++)
        for (std::int64_t y = b.lo[1]; y < b.hi[1]; y++)
            for (std::int64_t x = b.lo[0]; x < b.hi[0]; x++) {
                const auto v = static_cast<std::uint64_t>(x / 7 + y / 5 * 3 + z / 4 * 11) % 9 + seed;
                out.push_back(v % 9 == 0 ? 0 : v + (std::uint64_t{1} << 40));
            }
    return out;
}

/// What a read of `inner` gives after `data` (Fortran, `channels`) was written over `outer`
/// and nothing else: zeros where `inner` leaves `outer`.
template <class T>
std::vector<T> expected(const std::vector<T> &data, const cv::Box &outer, const cv::Box &inner, std::size_t channels) {
    const cv::Vec3i os = outer.shape(), is = inner.shape();
    std::vector<T> out(static_cast<std::size_t>(inner.voxels()) * channels, T{});
    for (std::size_t c = 0; c < channels; c++)
        for (std::int64_t z = inner.lo[2]; z < inner.hi[2]; z++)
            for (std::int64_t y = inner.lo[1]; y < inner.hi[1]; y++)
                for (std::int64_t x = inner.lo[0]; x < inner.hi[0]; x++) {
                    if (x < outer.lo[0] || x >= outer.hi[0] || y < outer.lo[1] || y >= outer.hi[1] || z < outer.lo[2] ||
                        z >= outer.hi[2])
                        continue;
                    const auto ci = static_cast<std::int64_t>(c);
                    const auto si = (((ci * os[2] + z - outer.lo[2]) * os[1] + y - outer.lo[1]) * os[0]) + x - outer.lo[0];
                    const auto di = (((ci * is[2] + z - inner.lo[2]) * is[1] + y - inner.lo[1]) * is[0]) + x - inner.lo[0];
                    out[static_cast<std::size_t>(di)] = data[static_cast<std::size_t>(si)];
                }
    return out;
}

template <class T> std::vector<T> elements(const cv::Array<T> &a) { return std::vector<T>(a.begin(), a.end()); }

/// Index of the first differing element, or -1.
template <class T> long first_difference(const std::vector<T> &a, const std::vector<T> &b) {
    if (a.size() != b.size()) return static_cast<long>(std::min(a.size(), b.size()));
    for (std::size_t i = 0; i < a.size(); i++)
        if (a[i] != b[i]) return static_cast<long>(i);
    return -1;
}

/// JSON text of a string.
std::string json_text(const std::string &s) {
    Json j;
    j.kind = Json::String;
    j.text = s;
    return j.dump();
}

bool is_hex(const std::string &s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; });
}

cv::InfoSpec spec(cv::DataType t, std::uint32_t channels, bool seg, std::int64_t block) {
    cv::InfoSpec s;
    s.layer_type = seg ? "segmentation" : "image";
    s.data_type = t;
    s.num_channels = channels;
    s.resolution = {4, 4, 40};
    s.size = {256, 256, 128};
    s.chunk_size = {block, block, block};
    return s;
}

int dvid_voxel_boxes = 0, cxyz_elements = 0, boss_cases = 0, ocp_cases = 0;
bool quick = false;  // --quick: the first of intern's cases per channel only (for valgrind)

// ------------------------------------------------------------------------------------------
// DVID
// ------------------------------------------------------------------------------------------

/// Write `data` over `written` through `vol`, then check every box of `boxes` against it from
/// `vol` and from `fresh`; boxes past the extents only from `vol` (bounded(false)).
template <class T>
void round_trip(const std::string &what, const cv::Volume &vol, const cv::Volume &fresh, const cv::Box &written,
                const std::vector<T> &data, std::size_t channels, const std::vector<cv::Box> &inside,
                const std::vector<cv::Box> &across) {
    for (const cv::Box &b : inside) {
        const std::vector<T> want = expected(data, written, b, channels);
        CHECK(first_difference(elements(vol.cutout<T>(0, b)), want) < 0, what << " " << b.str() << ": differs from the write");
        CHECK(first_difference(elements(fresh.cutout<T>(0, b)), want) < 0,
              what << " " << b.str() << ": differs from the write (fresh handle)");
        dvid_voxel_boxes++;
    }
    for (const cv::Box &b : across) {
        const std::vector<T> want = expected(data, written, b, channels);
        const std::vector<T> got = elements(vol.cutout<T>(0, b));
        CHECK(first_difference(got, want) < 0, what << " " << b.str() << ": differs from the write, zeros outside");
        CHECK(std::any_of(got.begin(), got.end(), [](T v) { return v == T{}; }), what << " " << b.str() << ": no zero");
        EXPECT_THROW(cv::OutOfBounds, what + " " + b.str() + " from a bounded handle", fresh.cutout<T>(0, b),
                     CV_ERR_OUT_OF_BOUNDS);
        dvid_voxel_boxes++;
    }
}

void test_dvid_repos(const std::string &server) {
    const std::string uuid = cv::dvid_create_repo(server, "cpp", "cloudvolume's C++ binding tests");
    CHECK(uuid.size() == 32 && is_hex(uuid), "dvid_create_repo: \"" << uuid << "\" is not a 32-digit UUID");
    std::set<std::string> seen{uuid};
    for (const std::string &form : {"dvid://" + server, "http://" + server, server}) {
        const std::string u = cv::dvid_create_repo(form, "", "");
        CHECK(u.size() == 32 && is_hex(u) && seen.insert(u).second, form << ": repo UUID \"" << u << "\" not fresh");
    }
    EXPECT_THROW(cv::IoError, "dvid_create_repo on a dead server",
                 cv::dvid_create_repo("127.0.0.1:1", "x", "", cv::Options().retry_budget(1).max_attempts(1)), CV_ERR_IO,
                 "127.0.0.1:1");
    EXPECT_THROW(cv::InvalidArgument, "dvid_create_repo with a bad option",
                 cv::dvid_create_repo(server, "x", "", cv::Options().set("no_such_option", "1")), CV_ERR_INVALID_ARGUMENT,
                 "no_such_option");
}

void test_dvid_image(const std::string &base) {
    const std::string url = base + "grey16";
    const cv::Volume vol = cv::Volume::create(url, cv::new_info(spec(cv::DataType::uint16, 1, false, 32)),
                                              cv::Options().bounded(false));
    CHECK(vol.data_type() == cv::DataType::uint16 && vol.num_channels() == 1, url << ": type or channels");
    CHECK(vol.chunk_size(0) == (cv::Vec3i{32, 32, 32}), url << ": chunk size");
    const cv::Box written{{32, 64, 0}, {96, 128, 64}};
    const std::vector<std::uint16_t> data = values<std::uint16_t>(static_cast<std::size_t>(written.voxels()), 1);
    vol.write(0, written, data);
    // A fresh (bounded) handle: the extents written are the bounds; the instance's metadata.
    const cv::Volume fresh = cv::Volume::open(url);
    CHECK(fresh.bounds(0) == written, url << ": bounds " << fresh.bounds(0).str() << ", wrote " << written.str());
    CHECK(fresh.resolution(0) == (cv::Vec3d{4, 4, 40}), url << ": resolution");
    CHECK(fresh.info_json().find("uint16blk") != std::string::npos, url << ": info " << fresh.info_json());
    round_trip<std::uint16_t>(url, vol, fresh, written, data, 1,
                              {written, {{64, 96, 32}, {96, 128, 64}}, {{33, 65, 1}, {95, 127, 63}}, {{40, 70, 5}, {77, 101, 9}}},
                              {{{20, 60, 0}, {70, 100, 20}}, {{90, 120, 40}, {140, 150, 80}}});
    // Far past the extents: zeros.
    const cv::Array<std::uint16_t> far = vol.cutout<std::uint16_t>(0, {{500, 500, 500}, {517, 509, 503}});
    CHECK(std::all_of(far.begin(), far.end(), [](std::uint16_t v) { return v == 0; }), url << ": unwritten voxels not 0");
    // C order and one-channel CXYZ (the same layout as F).
    const cv::Box q{{33, 65, 1}, {95, 127, 63}};
    const cv::Array<std::uint16_t> f = vol.cutout<std::uint16_t>(0, q);
    const cv::Array<std::uint16_t> c = vol.cutout<std::uint16_t>(0, q, cv::Order::C);
    CHECK(c.order() == cv::Order::C && elements(c.to_order(cv::Order::F)) == elements(f), url << ": C order");
    const cv::Array<std::uint16_t> cx = vol.cutout_cxyz<std::uint16_t>(0, q);
    CHECK(cx.order() == cv::Order::CXYZ && elements(cx) == elements(f), url << ": one-channel CXYZ differs from F");
    // An unaligned write is refused naming the block size, and changes nothing...
    const cv::Box w{{40, 70, 10}, {60, 90, 30}};
    const std::vector<std::uint16_t> patch = values<std::uint16_t>(static_cast<std::size_t>(w.voxels()), 2);
    EXPECT_THROW(cv::InvalidArgument, url + ": unaligned write " + w.str(), vol.write(0, w, patch),
                 CV_ERR_INVALID_ARGUMENT, "32x32x32", "non_aligned_writes", "grey16");
    CHECK(elements(vol.cutout<std::uint16_t>(0, written)) == data, url << ": a refused write changed data");
    // ...and painted into the blocks around it with non_aligned_writes.
    const cv::Volume na = cv::Volume::open(url, cv::Options().non_aligned_writes(true));
    na.write(0, w, patch);
    std::vector<std::uint16_t> want = data;
    const cv::Vec3i s = written.shape(), ws = w.shape();
    for (std::int64_t z = w.lo[2]; z < w.hi[2]; z++)
        for (std::int64_t y = w.lo[1]; y < w.hi[1]; y++)
            for (std::int64_t x = w.lo[0]; x < w.hi[0]; x++)
                want[static_cast<std::size_t>(((z - written.lo[2]) * s[1] + y - written.lo[1]) * s[0] + x - written.lo[0])] =
                    patch[static_cast<std::size_t>(((z - w.lo[2]) * ws[1] + y - w.lo[1]) * ws[0] + x - w.lo[0])];
    CHECK(first_difference(elements(na.cutout<std::uint16_t>(0, written)), want) < 0,
          url << ": the non-aligned write lost or misplaced voxels");
    // The wrapper's type check before any request.
    EXPECT_THROW(cv::TypeMismatch, url + ": cutout<uint8_t>", vol.cutout<std::uint8_t>(0, q), CV_ERR_INVALID_ARGUMENT,
                 "uint16");
}

void test_dvid_labels(const std::string &base) {
    const std::string url = base + "labels";
    const cv::Volume vol = cv::Volume::create(url, cv::new_info(spec(cv::DataType::uint64, 1, true, 64)),
                                              cv::Options().bounded(false));
    const cv::Box written{{0, 0, 0}, {128, 64, 64}};
    const std::vector<std::uint64_t> data = labels(written, 3);
    vol.write(0, written, data);
    const cv::Volume fresh = cv::Volume::open(url);
    CHECK(fresh.bounds(0) == written, url << ": bounds " << fresh.bounds(0).str());
    CHECK(fresh.data_type() == cv::DataType::uint64, url << ": data type");
    const std::string info = fresh.info_json();
    CHECK(info.find("\"segmentation\"") != std::string::npos && info.find("labelmap") != std::string::npos,
          url << ": info " << info);
    round_trip<std::uint64_t>(url, vol, fresh, written, data, 1,
                              {written, {{64, 0, 0}, {128, 64, 64}}, {{3, 5, 7}, {125, 59, 50}}},
                              {{{100, 40, 40}, {150, 80, 80}}});
    // unique over DVID: the distinct labels and their counts of the box.
    const cv::Box q{{3, 5, 7}, {125, 59, 50}};
    const std::vector<std::uint64_t> sub = expected(data, written, q, 1);
    std::map<std::uint64_t, std::uint64_t> counts;
    for (std::uint64_t v : sub) counts[v]++;
    const cv::Volume::Labels u = fresh.unique(0, q);
    bool same = u.labels.size() == counts.size() && u.counts.size() == counts.size();
    std::size_t i = 0;
    for (const auto &kv : counts) {
        if (!same) break;
        same = u.labels[i] == kv.first && u.counts[i] == kv.second;
        i++;
    }
    CHECK(same && counts.size() >= 5, url << ": unique gives " << u.labels.size() << " labels, the box has " << counts.size());
    // Unaligned writes name labelmap's block size.
    const cv::Box w{{0, 0, 0}, {32, 32, 32}};
    EXPECT_THROW(cv::InvalidArgument, url + ": unaligned write " + w.str(),
                 vol.write(0, w, std::vector<std::uint64_t>(static_cast<std::size_t>(w.voxels()), 7)),
                 CV_ERR_INVALID_ARGUMENT, "64x64x64", "non_aligned_writes");
}

void test_dvid_channel_first(const std::string &base) {
    const std::string url = base + "rgba";
    const cv::Volume vol = cv::Volume::create(url, cv::new_info(spec(cv::DataType::uint8, 4, false, 32)),
                                              cv::Options().bounded(false));
    CHECK(vol.num_channels() == 4 && vol.info_json().find("rgba8blk") != std::string::npos, url << ": " << vol.info_json());
    const cv::Box written{{0, 0, 0}, {64, 32, 32}};
    const std::vector<std::uint8_t> data = values<std::uint8_t>(static_cast<std::size_t>(written.voxels()) * 4, 7);
    vol.write(0, written, data);  // Fortran [x, y, z, c]: channel planes
    for (const cv::Box &b : {written, cv::Box{{3, 5, 7}, {61, 29, 30}}, cv::Box{{50, 20, 20}, {80, 40, 40}}}) {
        const std::string what = url + " " + b.str();
        const cv::Array<std::uint8_t> a = vol.cutout_cxyz<std::uint8_t>(0, b);
        const cv::Array<std::uint8_t> f = vol.cutout<std::uint8_t>(0, b);
        CHECK(a.order() == cv::Order::CXYZ && a.channels() == 4 && a.box() == b && a.size() == f.size(),
              what << ": the CXYZ array's shape");
        CHECK(a.strides() == (cv::Strides{4, 4 * b.shape()[0], 4 * b.shape()[0] * b.shape()[1], 1}), what << ": strides");
        const std::vector<std::uint8_t> want = expected(data, written, b, 4);  // Fortran
        const cv::Vec3i s = b.shape();
        std::size_t bad = 0, n = 0;
        for (std::int64_t z = 0; z < s[2]; z++)
            for (std::int64_t y = 0; y < s[1]; y++)
                for (std::int64_t x = 0; x < s[0]; x++)
                    for (std::int64_t c = 0; c < 4; c++) {
                        const auto flat = static_cast<std::size_t>(c + 4 * (x + s[0] * (y + s[1] * z)));
                        const auto fi = static_cast<std::size_t>(x + s[0] * (y + s[1] * (z + s[2] * c)));
                        const auto xu = static_cast<std::size_t>(x), yu = static_cast<std::size_t>(y),
                                   zu = static_cast<std::size_t>(z), cu = static_cast<std::size_t>(c);
                        if (a.data()[flat] != want[fi] || a(xu, yu, zu, cu) != f(xu, yu, zu, cu) ||
                            a.at(xu, yu, zu, cu) != want[fi])
                            bad++;
                        n++;
                    }
        CHECK(bad == 0 && n == a.size(), what << ": " << bad << " of " << n << " channel-first elements differ");
        cxyz_elements += static_cast<int>(n);
        CHECK(elements(a.to_order(cv::Order::F)) == elements(f) && elements(f.to_order(cv::Order::CXYZ)) == elements(a),
              what << ": to_order between CXYZ and F");
        CHECK(elements(a.to_order(cv::Order::C)) == elements(f.to_order(cv::Order::C)), what << ": to_order(C)");
        // Into the caller's buffer with the CXYZ strides.
        std::vector<std::uint8_t> buf(a.size());
        vol.cutout_into(0, b, buf, cv::dense_strides(s, 4, cv::Order::CXYZ));
        CHECK(buf == elements(a), what << ": cutout_into with CXYZ strides");
        cv::Array<std::uint8_t> into(b, 4, cv::Order::CXYZ);
        vol.cutout_into(0, into);
        CHECK(elements(into) == elements(a), what << ": cutout_into(Array CXYZ)");
    }
    // A CXYZ array written back (the wrapper transposes it), read channel first and Fortran.
    const cv::Box wb{{32, 0, 0}, {64, 32, 32}};
    cv::Array<std::uint8_t> w(wb, 4, cv::Order::CXYZ);
    for (std::size_t i = 0; i < w.size(); i++) w.data()[i] = static_cast<std::uint8_t>(i * 7 % 251 + 1);
    vol.write(0, w);
    CHECK(elements(vol.cutout_cxyz<std::uint8_t>(0, wb)) == elements(w), url << ": a written CXYZ array reads back");
    CHECK(elements(vol.cutout<std::uint8_t>(0, wb)) == elements(w.to_order(cv::Order::F)),
          url << ": a written CXYZ array reads back in F");
    // The pixel (x, y, z) is the quadruple at 4 * (x + sx * (y + sy * z)): RGBA as DVID packs it.
    const cv::Array<std::uint8_t> px = vol.cutout_cxyz<std::uint8_t>(0, {{40, 3, 4}, {41, 4, 5}});
    CHECK(px.size() == 4 && std::equal(px.begin(), px.end(), &w(8, 3, 4, 0)), url << ": one pixel's RGBA");
    bool threw = false;
    try {
        (void)px.at(0, 0, 0, 4);
    } catch (const std::out_of_range &) {
        threw = true;
    }
    CHECK(threw, "Array::at past the channels of a CXYZ array");
}

void test_dvid_errors(const std::string &server, const std::string &uuid, const std::string &base) {
    EXPECT_THROW(cv::NotFound, "unknown DVID instance", cv::Volume::open(base + "nosuch"), CV_ERR_NOT_FOUND, "nosuch");
    EXPECT_THROW(cv::NotFound, "unknown DVID node", cv::Volume::open("dvid://" + server + "/ffff0000ffff/grey16"),
                 CV_ERR_NOT_FOUND, "ffff0000ffff");
    EXPECT_THROW(cv::InvalidArgument, "a DVID instance name already taken",
                 cv::Volume::create(base + "grey16", cv::new_info(spec(cv::DataType::uint16, 1, false, 32))),
                 CV_ERR_INVALID_ARGUMENT, "already exists");
    EXPECT_THROW(cv::Unsupported, "a float64 DVID instance",
                 cv::Volume::create(base + "f64", cv::new_info(spec(cv::DataType::float64, 1, false, 32))),
                 CV_ERR_UNSUPPORTED, "float64");
    EXPECT_THROW(cv::InvalidArgument, "a labelmap block size not a multiple of 16",
                 cv::Volume::create(base + "odd", cv::new_info(spec(cv::DataType::uint64, 1, true, 24))),
                 CV_ERR_INVALID_ARGUMENT, "16");
    EXPECT_THROW(cv::InvalidArgument, "a DVID URL with a non-hex node", cv::Volume::open("dvid://" + server + "/not-hex/x"),
                 CV_ERR_INVALID_ARGUMENT);
    // A UUID prefix names the same node.
    const cv::Volume short_ = cv::Volume::open("dvid://" + server + "/" + uuid.substr(0, 8) + "/grey16");
    CHECK(short_.bounds(0) == (cv::Box{{32, 64, 0}, {96, 128, 64}}), "a UUID prefix: bounds " << short_.bounds(0).str());
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

template <class F> void timed(const char *what, F &&f) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    std::cout << "-- " << what << ": " << seconds_since(t0) << " s" << std::endl;
}

void test_dvid(const std::string &server) {
    std::cout << "DVID double at " << server << std::endl;
    timed("DVID repos", [&] { test_dvid_repos(server); });
    // A repo of this run's own: the doubles serve every test program of both builds.
    const std::string uuid = cv::dvid_create_repo(server, "cpp-services", "test_services");
    const std::string base = "dvid://" + server + "/" + uuid + "/";
    timed("DVID uint16 image", [&] { test_dvid_image(base); });
    timed("DVID uint64 labelmap", [&] { test_dvid_labels(base); });
    timed("DVID rgba8 channel first", [&] { test_dvid_channel_first(base); });
    timed("DVID errors", [&] { test_dvid_errors(server, uuid, base); });
}

// ------------------------------------------------------------------------------------------
// BOSS
// ------------------------------------------------------------------------------------------

template <class T>
void boss_case(const cv::Volume &vol, const std::string &what, std::uint32_t res, const cv::Box &b,
               const std::vector<unsigned char> &file, bool orders) {
    const cv::Array<T> a = vol.cutout<T>(res, b);
    const bool same = a.size() * sizeof(T) == file.size() && std::memcmp(a.data(), file.data(), file.size()) == 0;
    CHECK(same, what << ": " << a.size() * sizeof(T) << " bytes differ from intern's " << file.size());
    CHECK(std::any_of(a.begin(), a.end(), [](T v) { return v != T{}; }), what << ": all zero");
    if (orders) {
        CHECK(elements(vol.cutout<T>(res, b, cv::Order::C).to_order(cv::Order::F)) == elements(a), what << ": C order");
        CHECK(elements(vol.cutout_cxyz<T>(res, b)) == elements(a), what << ": one-channel CXYZ");
    }
    boss_cases++;
}

void test_boss(const std::string &url_base, const std::string &token, const std::string &dir) {
    std::cout << "BOSS double at " << url_base << ", intern's cutouts in " << dir << std::endl;
    // boss://http://HOST:PORT/col/exp -> HOST:PORT
    std::string host = url_base.substr(url_base.find("://") + 3);
    host = host.substr(host.find("://") + 3);
    host = host.substr(0, host.find('/'));
    const std::string secrets = "{\"protocol\": \"http\", \"host\": " + json_text(host) +
                                ", \"token\": " + json_text(token) + "}";
    const auto t0 = std::chrono::steady_clock::now();
    const Json manifest = harness::read_json(dir + "/manifest.json");
    std::map<std::string, std::vector<const Json *>> by_channel;
    for (const Json &c : manifest["cases"].items) by_channel[c["channel"].str()].push_back(&c);
    CHECK(by_channel.size() == 3, "intern's manifest has " << by_channel.size() << " channels");
    for (const auto &kv : by_channel) {
        const std::string url = url_base + "/" + kv.first;
        const cv::Volume vol = cv::Volume::open(url, cv::Options().secrets_json(secrets).bounded(false));
        const std::string dtype = kv.second.front()->operator[]("dtype").str();
        CHECK(std::string(cv::name(vol.data_type())) == dtype, url << ": " << cv::name(vol.data_type()) << ", intern " << dtype);
        CHECK(vol.num_mips() == 3, url << ": " << vol.num_mips() << " mips, the experiment has 3 levels");
        const bool annotation = dtype == "uint64";
        CHECK((vol.info_json().find("\"segmentation\"") != std::string::npos) == annotation, url << ": layer type");
        bool first = true;
        for (const Json *c : kv.second) {
            const auto res = static_cast<std::uint32_t>((*c)["res"].i64());
            const cv::Box b{(*c)["lo"].vec3i(), (*c)["hi"].vec3i()};
            const std::vector<unsigned char> file = harness::read_file(dir + "/" + (*c)["file"].str());
            const std::string what = url + " res " + std::to_string(res) + " " + b.str();
            if (dtype == "uint8")
                boss_case<std::uint8_t>(vol, what, res, b, file, first);
            else if (dtype == "uint16")
                boss_case<std::uint16_t>(vol, what, res, b, file, first);
            else if (dtype == "uint64")
                boss_case<std::uint64_t>(vol, what, res, b, file, first);
            else
                CHECK(false, what << ": manifest dtype " << dtype);
            if (annotation && first) {
                // unique over the BOSS: the distinct labels of intern's cutout.
                std::vector<std::uint64_t> ids(file.size() / 8);
                if (!ids.empty()) std::memcpy(ids.data(), file.data(), ids.size() * 8);
                const std::set<std::uint64_t> want(ids.begin(), ids.end());
                const cv::Volume::Labels u = vol.unique(res, b, false);
                CHECK(std::set<std::uint64_t>(u.labels.begin(), u.labels.end()) == want && u.labels.size() == want.size(),
                      what << ": unique gives " << u.labels.size() << " labels, intern's cutout has " << want.size());
            }
            first = false;
            if (quick) break;
        }
    }
    std::cout << "-- BOSS cases: " << seconds_since(t0) << " s" << std::endl;
    const int want_cases = quick ? 3 : 12;
    CHECK(boss_cases == want_cases, boss_cases << " BOSS cases read, want " << want_cases << " (intern's setup writes 12)");
    // A wrong token: AuthError naming the host, never the token.
    const std::string wrong = "{\"protocol\": \"http\", \"host\": " + json_text(host) +
                              ", \"token\": \"not-the-token\"}";
    bool leaked = false;
    try {
        (void)cv::Volume::open(url_base + "/img8", cv::Options().secrets_json(wrong));
    } catch (const cv::Error &e) {
        leaked = std::string(e.what()).find("not-the-token") != std::string::npos ||
                 std::string(e.what()).find(token) != std::string::npos;
    }
    CHECK(!leaked, "the auth error prints a token");
    EXPECT_THROW(cv::AuthError, "a wrong BOSS token", cv::Volume::open(url_base + "/img8", cv::Options().secrets_json(wrong)),
                 CV_ERR_AUTH, "127.0.0.1");
    EXPECT_THROW(cv::NotFound, "an unknown BOSS channel",
                 cv::Volume::open(url_base + "/nope", cv::Options().secrets_json(secrets)), CV_ERR_NOT_FOUND, "nope");
}

// ------------------------------------------------------------------------------------------
// OCP / ndstore
// ------------------------------------------------------------------------------------------

template <class T>
void ocp_case(const cv::Volume &vol, const std::string &what, std::uint32_t res, const cv::Box &b,
              const std::vector<unsigned char> &file) {
    const cv::Array<T> a = vol.cutout<T>(res, b);
    const bool same = a.size() * sizeof(T) == file.size() && std::memcmp(a.data(), file.data(), file.size()) == 0;
    CHECK(same, what << ": " << a.size() * sizeof(T) << " bytes differ from h5py's " << file.size());
    CHECK(std::any_of(a.begin(), a.end(), [](T v) { return v != T{}; }), what << ": all zero");
    ocp_cases++;
}

void test_ocp(const std::string &server, const std::string &dir) {
    std::cout << "ndstore double at " << server << ", h5py's cutouts in " << dir << std::endl;
    const Json manifest = harness::read_json(dir + "/manifest.json");
    const std::string base = "ocp://" + server + "/" + manifest["project"].str() + "/";
    const std::pair<cv::OcpFormat, const char *> formats[] = {
        {cv::OcpFormat::npz, "npz"}, {cv::OcpFormat::raw, "raw"}, {cv::OcpFormat::hdf5, "hdf5"}};
    for (const auto &f : formats) {
        for (const Json &c : manifest["cases"].items) {
            const std::string url = base + c["channel"].str(), dtype = c["dtype"].str();
            const cv::Volume vol = cv::Volume::open(url, cv::Options().ocp_format(f.first));
            CHECK(std::string(cv::name(vol.data_type())) == dtype, url << ": " << cv::name(vol.data_type()) << ", h5py " << dtype);
            CHECK(vol.num_mips() == 2, url << ": " << vol.num_mips() << " mips, the project has 2 levels");
            const auto res = static_cast<std::uint32_t>(c["res"].i64());
            const cv::Box b{c["lo"].vec3i(), c["hi"].vec3i()};
            const std::vector<unsigned char> file = harness::read_file(dir + "/" + c["file"].str());
            const std::string what = url + " as " + f.second + " res " + std::to_string(res) + " " + b.str();
            if (dtype == "uint8")
                ocp_case<std::uint8_t>(vol, what, res, b, file);
            else if (dtype == "uint16")
                ocp_case<std::uint16_t>(vol, what, res, b, file);
            else if (dtype == "uint32")
                ocp_case<std::uint32_t>(vol, what, res, b, file);
            else if (dtype == "uint64")
                ocp_case<std::uint64_t>(vol, what, res, b, file);
            else if (dtype == "float32")
                ocp_case<float>(vol, what, res, b, file);
            else
                CHECK(false, what << ": manifest dtype " << dtype);
            if (quick) break;
        }
    }
    const int want = quick ? 3 : 30;
    CHECK(ocp_cases == want, ocp_cases << " OCP cases read, want " << want);
    // A write (npz, non-zero values: ndstore keeps only those), read back from the hdf5 answer;
    // past the manifest's boxes (z >= 40), so a second run against the same double reads h5py's.
    const cv::Volume w = cv::Volume::open(base + "anno32");
    const cv::Box wb{{150, 70, 40}, {260, 190, 53}};
    const std::vector<std::uint32_t> data = values<std::uint32_t>(static_cast<std::size_t>(wb.voxels()), 77);
    w.write(0, wb, data);
    const cv::Volume r = cv::Volume::open(base + "anno32", cv::Options().ocp_format(cv::OcpFormat::hdf5));
    CHECK(elements(r.cutout<std::uint32_t>(0, wb)) == data, "an npz write read back as hdf5 differs");
    EXPECT_THROW(cv::NotFound, "an unknown OCP channel", cv::Volume::open(base + "nope"), CV_ERR_NOT_FOUND, "nope");
    EXPECT_THROW(cv::Unsupported, "ocp_format blosc", cv::Volume::open(base + "img8", cv::Options().set("ocp_format", "\"blosc\"")),
                 CV_ERR_UNSUPPORTED, "ocp_format");
}

}  // namespace

int main(int argc, char **argv) {
    quick = argc > 1 && std::string(argv[1]) == "--quick";
    const std::string dvid = env("CV_DVID_SERVER"), boss = env("CV_BOSS_URL_BASE"), token = env("CV_BOSS_TOKEN"),
                      intern = env("CV_BOSS_INTERN_DIR");
    const std::string ocp = env("CV_OCP_SERVER"), h5py_dir = env("CV_OCP_H5PY_DIR");
    const bool have_boss = !boss.empty() && !token.empty() && std::filesystem::exists(intern + "/manifest.json");
    const bool have_ocp = !ocp.empty() && std::filesystem::exists(h5py_dir + "/manifest.json");
    if (dvid.empty() || !have_boss || !have_ocp) {
        const std::string missing = std::string(dvid.empty() ? "CV_DVID_SERVER " : "") +
                                    (have_boss ? "" : "CV_BOSS_URL_BASE/CV_BOSS_TOKEN/CV_BOSS_INTERN_DIR (manifest.json) ") +
                                    (have_ocp ? "" : "CV_OCP_SERVER/CV_OCP_H5PY_DIR (manifest.json) ");
        if (env("CV_REQUIRE_REFERENCE") == "1") {
            std::cerr << "test_services: CV_REQUIRE_REFERENCE=1 but " << missing
                      << "unset: scripts/test_cpp.sh starts the DVID, BOSS and ndstore doubles with target/venv/bin/python "
                         "(scripts/setup.sh makes the venv)"
                      << std::endl;
            return 1;
        }
        std::cout << "test_services: SKIP: " << missing << "unset (scripts/test_cpp.sh starts the doubles)" << std::endl;
        return 77;
    }
    std::cout << "cloudvolume " << cv::version() << std::endl;
    try {
        test_dvid(dvid);
    } catch (const cv::Error &e) {
        CHECK(false, "DVID: unexpected " << e.code_name() << ": " << e.what());
    } catch (const std::exception &e) {
        CHECK(false, "DVID: unexpected exception: " << e.what());
    }
    try {
        timed("BOSS", [&] { test_boss(boss, token, intern); });
    } catch (const cv::Error &e) {
        CHECK(false, "BOSS: unexpected " << e.code_name() << ": " << e.what());
    } catch (const std::exception &e) {
        CHECK(false, "BOSS: unexpected exception: " << e.what());
    }
    try {
        timed("OCP", [&] { test_ocp(ocp, h5py_dir); });
    } catch (const cv::Error &e) {
        CHECK(false, "OCP: unexpected " << e.code_name() << ": " << e.what());
    } catch (const std::exception &e) {
        CHECK(false, "OCP: unexpected exception: " << e.what());
    }
    std::cout << "DVID: " << dvid_voxel_boxes << " boxes compared, " << cxyz_elements
              << " channel-first elements; BOSS: " << boss_cases << " of intern's cutouts; OCP: " << ocp_cases
              << " of h5py's cutouts" << std::endl;
    // The count first, so scripts/test_cpp.sh's summary shows it.
    std::cout << harness::checks << " checks, " << harness::failures << " failures (test_services)" << std::endl;
    return harness::failures == 0 ? 0 : 1;
}
