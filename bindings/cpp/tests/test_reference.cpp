// The C++ wrapper against the reference layers the core's conformance tests use
// (target/reference, written by cloud-volume and tensorstore; tests/reference/make_layers.py).
//
// usage: test_reference [REFERENCE_DIR]   (else $CV_REFERENCE_DIR)
//
// For every layer of manifest.json, through cloudvolume::Volume only:
// - the metadata getters equal the manifest (data type, channels, mips, bounds, chunk size,
//   resolution, encoding) and info_json() names the data type; a cutout with the wrong element
//   type throws TypeMismatch naming both types;
// - every box with expected bytes reads equal to them (within the layer's JPEG tolerance) as a
//   Fortran cutout<T>, as an Order::C cutout<T> (compared with the transposed expected bytes),
//   and through cutout_into into a sub-view of a larger array (C order and Fortran order boxes
//   alternating) whose elements outside the view must stay untouched;
// - every box the reference refused throws NotFound / OutOfBounds, for the Fortran and the
//   C-order read alike, with a message naming the layer;
// - every scattered-point set equals the reference, and chunks_exist equals the chunks the
//   writer stored.
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "cloudvolume.hpp"
#include "harness.hpp"

namespace cv = cloudvolume;
using harness::Json;

namespace {

struct Totals {
    int layers = 0, fortran = 0, c_order = 0, views = 0, errors = 0, point_sets = 0, chunk_sets = 0;
};
Totals totals;
std::string refdir;

/// Options of a manifest entry, through the typed setters.
cv::Options options_of(const Json &o) {
    cv::Options opts;
    for (const auto &m : o.members) {
        if (m.first == "bounded")
            opts.bounded(m.second.boolean);
        else if (m.first == "fill_missing")
            opts.fill_missing(m.second.boolean);
        else if (m.first == "background_color")
            opts.background_color(m.second.num());
        else
            opts.set(m.first, m.second.dump());
    }
    return opts;
}

/// Index of the first element differing by more than `tol` (elements of type T), or -1.
template <class T> long first_difference(const T *got, const unsigned char *want, std::size_t n, int tol) {
    for (std::size_t i = 0; i < n; i++) {
        T w;
        std::memcpy(&w, want + i * sizeof(T), sizeof(T));
        if (tol == 0) {
            if (std::memcmp(&got[i], &w, sizeof(T)) != 0) return static_cast<long>(i);
        } else {
            const long d = static_cast<long>(got[i]) - static_cast<long>(w);
            if (d > tol || d < -tol) return static_cast<long>(i);
        }
    }
    return -1;
}

template <class T> std::string show(T v) {
    if constexpr (sizeof(T) == 1)
        return std::to_string(static_cast<int>(v));
    else
        return std::to_string(v);
}

/// The element type that is not T (for the TypeMismatch check).
template <class T> using Other = std::conditional_t<std::is_same_v<T, std::uint8_t>, std::int8_t, std::uint8_t>;

template <class T>
void read_box(const std::string &what, const cv::Volume &vol, const Json &layer, const Json &box, std::size_t index,
              int tol) {
    const std::uint32_t mip = static_cast<std::uint32_t>(box["mip"].i64());
    const cv::Box b{box["lo"].vec3i(), box["hi"].vec3i()};
    const std::string name = layer["path"].str().substr(layer["path"].str().rfind('/') + 1);
    const std::size_t nc = static_cast<std::size_t>(layer["channels"].i64());
    const std::string label = what + " mip " + std::to_string(mip) + " box " + b.str() + " (" + box["kind"].str() + ")";

    if (box.has("error")) {
        const std::string e = box["error"].str();
        if (e == "not_found") {
            EXPECT_THROW(cv::NotFound, label + " Fortran", vol.cutout<T>(mip, b), CV_ERR_NOT_FOUND, name);
            EXPECT_THROW(cv::NotFound, label + " C order", vol.cutout<T>(mip, b, cv::Order::C), CV_ERR_NOT_FOUND, name);
        } else if (e == "out_of_bounds") {
            EXPECT_THROW(cv::OutOfBounds, label + " Fortran", vol.cutout<T>(mip, b), CV_ERR_OUT_OF_BOUNDS, name);
            EXPECT_THROW(cv::OutOfBounds, label + " C order", vol.cutout<T>(mip, b, cv::Order::C),
                         CV_ERR_OUT_OF_BOUNDS, name);
        } else {
            CHECK(false, label << ": unknown expected error " << e);
        }
        totals.errors++;
        return;
    }

    const auto want = harness::read_file(refdir + "/" + box["expected"].str());
    const cv::Vec3i s = b.shape();
    const std::size_t n = static_cast<std::size_t>(s[0] * s[1] * s[2]) * nc;
    CHECK(want.size() == n * sizeof(T), label << ": expected file has " << want.size() << " bytes, box wants " << n * sizeof(T));
    if (want.size() != n * sizeof(T)) return;

    // Fortran order: the expected bytes as they are.
    try {
        const cv::Array<T> f = vol.cutout<T>(mip, b);
        CHECK(f.size() == n && f.shape() == s && f.channels() == nc && f.box() == b && f.order() == cv::Order::F,
              label << ": array shape");
        const long d = first_difference(f.data(), want.data(), n, tol);
        CHECK(d < 0, label << ": Fortran cutout differs at element " << d);
        totals.fortran++;
    } catch (const cv::Error &e) {
        CHECK(false, label << ": Fortran cutout threw " << e.code_name() << ": " << e.what());
    }

    // C order: element (x, y, z, c) of the C array equals element (x, y, z, c) of the expected
    // Fortran bytes, i.e. the C array is the transpose.
    try {
        const cv::Array<T> c = vol.cutout<T>(mip, b, cv::Order::C);
        CHECK(c.order() == cv::Order::C && c.size() == n, label << ": C array shape");
        std::vector<unsigned char> transposed(want.size());
        const auto sx = static_cast<std::size_t>(s[0]), sy = static_cast<std::size_t>(s[1]),
                   sz = static_cast<std::size_t>(s[2]);
        for (std::size_t ch = 0; ch < nc; ch++)
            for (std::size_t z = 0; z < sz; z++)
                for (std::size_t y = 0; y < sy; y++)
                    for (std::size_t x = 0; x < sx; x++) {
                        const std::size_t fi = x + sx * (y + sy * (z + sz * ch));
                        const std::size_t ci = ch + nc * (z + sz * (y + sy * x));
                        std::memcpy(&transposed[ci * sizeof(T)], &want[fi * sizeof(T)], sizeof(T));
                    }
        const long d = first_difference(c.data(), transposed.data(), n, tol);
        CHECK(d < 0, label << ": C-order cutout differs from the transposed Fortran bytes at element " << d);
        // And the accessor agrees with the Fortran array element by element (spot checks).
        const cv::Array<T> f = c.to_order(cv::Order::F);
        CHECK(first_difference(f.data(), want.data(), n, tol) < 0, label << ": to_order(F) of the C array");
        totals.c_order++;
    } catch (const cv::Error &e) {
        CHECK(false, label << ": C-order cutout threw " << e.code_name() << ": " << e.what());
    }

    // A sub-view of a larger array: pad 1..3 voxels around the box on each axis (and a spare
    // channel), fill with a sentinel, read into the view, then check the view and the padding.
    {
        const cv::Order order = (index % 2 == 0) ? cv::Order::C : cv::Order::F;
        const cv::Vec3i pad_lo{1, 2, 0}, pad_hi{2, 0, 3};
        const cv::Box big{{b.lo[0] - pad_lo[0], b.lo[1] - pad_lo[1], b.lo[2] - pad_lo[2]},
                          {b.hi[0] + pad_hi[0], b.hi[1] + pad_hi[1], b.hi[2] + pad_hi[2]}};
        cv::Array<T> outer(big, nc + 1, order);
        T sentinel;
        std::memset(&sentinel, 0x5A, sizeof(T));
        for (T &v : outer) v = sentinel;
        const cv::Strides st = outer.strides();
        T *origin = &outer(static_cast<std::size_t>(pad_lo[0]), static_cast<std::size_t>(pad_lo[1]),
                           static_cast<std::size_t>(pad_lo[2]), 0);
        const std::size_t avail = outer.size() - static_cast<std::size_t>(origin - outer.data());
        try {
            vol.cutout_into(mip, b, origin, avail, st);
            const auto sx = static_cast<std::size_t>(s[0]), sy = static_cast<std::size_t>(s[1]),
                       sz = static_cast<std::size_t>(s[2]);
            std::size_t bad_in = 0, bad_out = 0;
            const cv::Vec3i os = big.shape();
            for (std::size_t ch = 0; ch <= nc; ch++)
                for (std::size_t z = 0; z < static_cast<std::size_t>(os[2]); z++)
                    for (std::size_t y = 0; y < static_cast<std::size_t>(os[1]); y++)
                        for (std::size_t x = 0; x < static_cast<std::size_t>(os[0]); x++) {
                            const T got = outer(x, y, z, ch);
                            const bool inside = ch < nc && x >= static_cast<std::size_t>(pad_lo[0]) &&
                                                x < pad_lo[0] + sx && y >= static_cast<std::size_t>(pad_lo[1]) &&
                                                y < pad_lo[1] + sy && z >= static_cast<std::size_t>(pad_lo[2]) &&
                                                z < pad_lo[2] + sz;
                            if (!inside) {
                                if (std::memcmp(&got, &sentinel, sizeof(T)) != 0) bad_out++;
                                continue;
                            }
                            const std::size_t fi = (x - pad_lo[0]) + sx * ((y - pad_lo[1]) + sy * ((z - pad_lo[2]) + sz * ch));
                            if (first_difference(&got, &want[fi * sizeof(T)], 1, tol) >= 0) bad_in++;
                        }
            CHECK(bad_in == 0, label << ": " << (order == cv::Order::C ? "C" : "F") << "-order sub-view: " << bad_in
                                     << " elements differ");
            CHECK(bad_out == 0, label << ": sub-view read touched " << bad_out << " elements outside the view");
            totals.views++;
        } catch (const cv::Error &e) {
            CHECK(false, label << ": sub-view cutout_into threw " << e.code_name() << ": " << e.what());
        }
    }

    // Every fourth box also through the dense container overload.
    if (index % 4 == 1) {
        std::vector<T> dense(n);
        try {
            vol.cutout_into(mip, b, dense);
            CHECK(first_difference(dense.data(), want.data(), n, tol) < 0, label << ": cutout_into(vector) differs");
        } catch (const cv::Error &e) {
            CHECK(false, label << ": cutout_into(vector) threw " << e.code_name() << ": " << e.what());
        }
    }
}

template <class T> void run_layer(const Json &layer) {
    const std::string path = layer["path"].str();
    const std::string url = "file://" + refdir + "/" + path;
    const std::string what = path + " (" + layer["encoding"].str() + " " + layer["dtype"].str() + ")";
    const int tol = static_cast<int>(layer["tolerance"].i64());
    const std::size_t nc = static_cast<std::size_t>(layer["channels"].i64());
    totals.layers++;

    // Metadata.
    try {
        const cv::Volume vol = cv::Volume::open(url);
        CHECK(vol.data_type() == cv::data_type_of<T>, what << ": data type " << cv::name(vol.data_type()));
        CHECK(std::string(cv::name(vol.data_type())) == layer["dtype"].str(), what << ": data type name");
        CHECK(vol.item_size() == sizeof(T), what << ": item size " << vol.item_size());
        CHECK(vol.num_channels() == nc, what << ": channels " << vol.num_channels());
        CHECK(vol.num_mips() == layer["mips"].size(), what << ": mips " << vol.num_mips());
        CHECK(vol.default_mip() == 0, what << ": default mip");
        for (std::size_t m = 0; m < layer["mips"].size() && m < vol.num_mips(); m++) {
            const Json &mj = layer["mips"][m];
            const auto mip = static_cast<std::uint32_t>(m);
            const cv::Vec3i off = mj["voxel_offset"].vec3i(), size = mj["size"].vec3i();
            const cv::Box want{off, {off[0] + size[0], off[1] + size[1], off[2] + size[2]}};
            CHECK(vol.bounds(mip) == want, what << ": mip " << m << " bounds " << vol.bounds(mip).str());
            CHECK(vol.chunk_size(mip) == mj["chunk_size"].vec3i(), what << ": mip " << m << " chunk size");
            CHECK(vol.resolution(mip) == mj["resolution"].vec3d(), what << ": mip " << m << " resolution");
            CHECK(std::string(cv::name(vol.encoding(mip))) == layer["encoding"].str(),
                  what << ": mip " << m << " encoding " << cv::name(vol.encoding(mip)));
        }
        const std::string info = vol.info_json();
        CHECK(info.find("\"" + layer["dtype"].str() + "\"") != std::string::npos, what << ": info_json lacks the data type");
        const cv::Box one{vol.bounds(0).lo, {vol.bounds(0).lo[0] + 1, vol.bounds(0).lo[1] + 1, vol.bounds(0).lo[2] + 1}};
        using O = Other<T>;
        EXPECT_THROW(cv::TypeMismatch, what + ": cutout with the wrong element type", vol.cutout<O>(0, one),
                     CV_ERR_INVALID_ARGUMENT, cv::name(cv::data_type_of<O>), layer["dtype"].str());
    } catch (const cv::Error &e) {
        CHECK(false, what << ": open/metadata threw " << e.code_name() << ": " << e.what());
        return;
    }

    // Boxes, one handle per distinct option set.
    std::map<std::string, std::vector<const Json *>> groups;
    for (const Json &b : layer["boxes"].items) groups[b["options"].dump()].push_back(&b);
    std::size_t index = 0;
    for (const auto &g : groups) {
        const Json &opts = (*g.second.front())["options"];
        try {
            const cv::Volume vol = cv::Volume::open(url, options_of(opts));
            for (const Json *b : g.second) read_box<T>(what + (opts.kind == Json::Null ? "" : " " + g.first), vol, layer, *b, index++, tol);
        } catch (const cv::Error &e) {
            CHECK(false, what << " options " << g.first << ": open threw " << e.code_name() << ": " << e.what());
        }
    }

    // Scattered points.
    for (const Json &set : layer["points"].items) {
        const auto mip = static_cast<std::uint32_t>(set["mip"].i64());
        std::vector<cv::Vec3i> pts;
        for (const Json &p : set["points"].items) pts.push_back(p.vec3i());
        const std::string label = what + " points mip " + std::to_string(mip) + " (" + set["kind"].str() + ")";
        try {
            const cv::Volume vol = cv::Volume::open(url, options_of(set["options"]));
            if (set.has("error")) {
                const std::string e = set["error"].str();
                if (e == "not_found")
                    EXPECT_THROW(cv::NotFound, label, vol.scattered_points<T>(mip, pts), CV_ERR_NOT_FOUND);
                else
                    EXPECT_THROW(cv::OutOfBounds, label, vol.scattered_points<T>(mip, pts), CV_ERR_OUT_OF_BOUNDS);
            } else {
                const std::vector<T> got = vol.scattered_points<T>(mip, pts);
                const auto want = harness::read_file(refdir + "/" + set["expected"].str());
                CHECK(got.size() == pts.size() * nc && want.size() == got.size() * sizeof(T),
                      label << ": " << got.size() << " values, expected file " << want.size() << " bytes");
                if (want.size() == got.size() * sizeof(T)) {
                    const long d = first_difference(got.data(), want.data(), got.size(), tol);
                    CHECK(d < 0, label << ": value " << d << " differs");
                }
            }
            totals.point_sets++;
        } catch (const cv::Error &e) {
            CHECK(false, label << ": threw " << e.code_name() << ": " << e.what());
        }
    }

    // Stored chunks.
    for (const Json &cs : layer["chunks"].items) {
        const auto mip = static_cast<std::uint32_t>(cs["mip"].i64());
        const cv::Vec3i grid = cs["grid"].vec3i();
        std::vector<std::uint8_t> want(static_cast<std::size_t>(grid[0] * grid[1] * grid[2]), 0);
        for (const Json &p : cs["present"].items) {
            const cv::Vec3i c = p.vec3i();
            want[static_cast<std::size_t>(c[0] + grid[0] * (c[1] + grid[1] * c[2]))] = 1;
        }
        try {
            const cv::Volume vol = cv::Volume::open(url);
            const std::vector<std::uint8_t> got = vol.chunks_exist(mip, vol.bounds(mip));
            CHECK(got == want, what << ": chunks_exist at mip " << mip << " differs from the stored chunks");
            CHECK(vol.chunk_count(mip, vol.bounds(mip)) == want.size(), what << ": chunk_count");
            totals.chunk_sets++;
        } catch (const cv::Error &e) {
            CHECK(false, what << ": chunks_exist threw " << e.code_name() << ": " << e.what());
        }
    }
}

}  // namespace

int main(int argc, char **argv) {
    harness::verbose = false;
    refdir = harness::reference_dir(argc, argv);
    if (refdir.empty()) return harness::missing_reference("test_reference", argc > 1 ? argv[1] : "$CV_REFERENCE_DIR");
    const Json manifest = harness::read_json(refdir + "/manifest.json");
    std::cout << "cloudvolume " << cv::version() << ", reference layers in " << refdir << std::endl;
    for (const Json &layer : manifest["layers"].items) {
        const std::string dt = layer["dtype"].str();
        if (dt == "uint8") run_layer<std::uint8_t>(layer);
        else if (dt == "int8") run_layer<std::int8_t>(layer);
        else if (dt == "uint16") run_layer<std::uint16_t>(layer);
        else if (dt == "int16") run_layer<std::int16_t>(layer);
        else if (dt == "uint32") run_layer<std::uint32_t>(layer);
        else if (dt == "int32") run_layer<std::int32_t>(layer);
        else if (dt == "uint64") run_layer<std::uint64_t>(layer);
        else if (dt == "int64") run_layer<std::int64_t>(layer);
        else if (dt == "float32") run_layer<float>(layer);
        else if (dt == "float64") run_layer<double>(layer);
        else CHECK(false, layer["path"].str() << ": unknown dtype " << dt);
    }
    std::cout << "layers " << totals.layers << ", boxes read in Fortran order " << totals.fortran << ", in C order "
              << totals.c_order << ", into sub-views " << totals.views << ", refused as expected " << totals.errors
              << ", point sets " << totals.point_sets << ", chunk sets " << totals.chunk_sets << std::endl;
    CHECK(totals.layers == static_cast<int>(manifest["layers"].size()) && totals.fortran > 1000 && totals.errors > 50,
          "too few cases: the manifest should hold ~90 layers, ~1800 boxes and ~80 refusals");
    return harness::finish("test_reference");
}
