// Meshes and skeletons through the C++ wrapper (cloudvolume::Volume::mesh, meshes_each,
// mesh_lods, save_mesh, put_mesh, mesh_info, skeleton, skeletons, save_skeleton, put_skeleton,
// skeleton_info, skeleton_attributes) against the mesh fixture tests/reference/make_meshes.py
// writes (layers written by cloud-volume 12.15.2 and a DracoPy writer, and cloud-volume's reads
// of every object), compared as tests/meshes.rs compares them:
// - every recorded read (legacy meshes with and without a transform, welded, unwelded,
//   chunk-deduplicated, several ids fused or each on its own; multi-resolution Draco meshes
//   unsharded, sharded, sharded with gzip data, every lod and the coarsest; skeletons unsharded
//   and sharded with four vertex attributes, the layers without an info, attributes or
//   transform; the bad inputs): vertices bit for bit, faces and edges in the same order,
//   attribute bytes equal; cloud-volume's errors as the library's statuses (NotFound,
//   InvalidArgument for a lod out of range, DecodeError); mesh.exists as mesh_lods;
// - save_mesh's OBJ and PLY bytes equal cloud-volume's to_obj / to_ply, STL's size; save_skeleton's
//   SWC equals osteoid's to_swc as a forest (rows and parent links), with its # SCALE line;
// - put_mesh and put_skeleton into copies of the layers' infos in a temporary directory, read
//   back equal; the wrapper's refusals of attributes that do not match the skeleton info, the
//   library's of a face past the vertices and of sharded / multi-resolution directories;
// - the API's own cases: allow_missing (fewer meshes fused, std::nullopt each), a missing id
//   (NotFound naming it), a bad lod (InvalidArgument), no ids, typed attribute values
//   (TypeMismatch for the wrong type), the info JSON, an empty Volume.
//
// usage: test_objects [REFERENCE_DIR] [--quick]   (else $CV_REFERENCE_DIR; reads
// REFERENCE_DIR/meshes/manifest.json; --quick replays a sample of the recorded reads, for valgrind)
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cloudvolume.hpp"
#include "harness.hpp"

namespace cv = cloudvolume;
using harness::Json;

namespace {

std::string dir;  // REFERENCE_DIR/meshes
bool quick = false;
std::map<std::string, int> counts;

// ---- .npy files ---------------------------------------------------------------------------

using harness::Npy;

Npy npy(const std::string &rel) { return harness::read_npy(dir + "/" + rel); }

std::vector<float> f32s(const std::vector<unsigned char> &b) {
    std::vector<float> v(b.size() / 4);
    if (!v.empty()) std::memcpy(v.data(), b.data(), v.size() * 4);
    return v;
}
std::vector<std::uint32_t> u32s(const std::vector<unsigned char> &b) {
    std::vector<std::uint32_t> v(b.size() / 4);
    if (!v.empty()) std::memcpy(v.data(), b.data(), v.size() * 4);
    return v;
}

std::vector<float> flat(const std::vector<std::array<float, 3>> &v) {
    std::vector<float> out;
    out.reserve(v.size() * 3);
    for (const auto &p : v) out.insert(out.end(), p.begin(), p.end());
    return out;
}
template <std::size_t N> std::vector<std::uint32_t> flat(const std::vector<std::array<std::uint32_t, N>> &v) {
    std::vector<std::uint32_t> out;
    out.reserve(v.size() * N);
    for (const auto &p : v) out.insert(out.end(), p.begin(), p.end());
    return out;
}

/// Index of the first float differing in its bits (or the shorter length), or -1.
long bit_difference(const std::vector<float> &a, const std::vector<float> &b) {
    const std::size_t n = std::min(a.size(), b.size());
    for (std::size_t i = 0; i < n; i++)
        if (std::memcmp(&a[i], &b[i], 4) != 0) return static_cast<long>(i);
    return a.size() == b.size() ? -1 : static_cast<long>(n);
}

bool same_bits(const cv::Mesh &a, const cv::Mesh &b) {
    return bit_difference(flat(a.vertices), flat(b.vertices)) < 0 && a.faces == b.faces;
}

/// The mesh equals cloud-volume's recorded item: vertices bit for bit, faces in order.
void expect_mesh(const Json &item, const cv::Mesh &got, const std::string &what) {
    const Npy v = npy(item["vertices"].str());
    const Npy f = npy(item["faces"].str());
    CHECK(v.descr == "<f4", what << ": vertices are " << v.descr);
    const std::vector<float> want_v = f32s(v.data), got_v = flat(got.vertices);
    const std::vector<std::uint32_t> want_f = u32s(f.data), got_f = flat(got.faces);
    CHECK(got_v.size() == want_v.size(), what << ": " << got.vertices.size() << " vertices, cloud-volume "
                                              << want_v.size() / 3);
    CHECK(got_f.size() == want_f.size(), what << ": " << got.faces.size() << " faces, cloud-volume " << want_f.size() / 3);
    const long d = bit_difference(got_v, want_v);
    CHECK(d < 0, what << ": vertex " << d / 3 << " coordinate " << d % 3 << ": ours "
                      << (d >= 0 && static_cast<std::size_t>(d) < got_v.size() ? got_v[static_cast<std::size_t>(d)] : 0)
                      << " cloud-volume "
                      << (d >= 0 && static_cast<std::size_t>(d) < want_v.size() ? want_v[static_cast<std::size_t>(d)] : 0));
    CHECK(got_f == want_f, what << ": faces differ");
}

std::vector<std::uint64_t> ids_of(const Json &v) {
    std::vector<std::uint64_t> out;
    if (v.kind == Json::Array) {
        for (const Json &x : v.items) out.push_back(std::stoull(x.text));
    } else {
        out.push_back(std::stoull(v.text));
    }
    return out;
}

std::string url_of(const std::string &base, const std::string &layer) { return "file://" + base + "/" + layer; }

std::map<std::string, cv::Volume> vols;
const cv::Volume &vol_of(const std::string &layer) {
    auto it = vols.find(layer);
    if (it == vols.end()) it = vols.emplace(layer, cv::Volume::open(url_of(dir, layer))).first;
    return it->second;
}

bool is_multilod(const cv::Volume &v) {
    return harness::parse_json(v.mesh_info())["@type"].str() == "neuroglancer_multilod_draco";
}

/// MeshOptions{lod, weld, allow_missing, chunk_size}, every member given (-Wmissing-field-initializers).
cv::MeshOptions mo(std::int32_t lod, std::optional<bool> weld = std::nullopt, bool allow_missing = false,
                   std::optional<cv::Vec3i> chunk_size = std::nullopt) {
    return cv::MeshOptions{lod, weld, allow_missing, chunk_size};
}

bool contains(const std::string &s, const std::string &needle) { return s.find(needle) != std::string::npos; }

/// Run `f`, which must throw a cloudvolume::Error; give it (nullopt when nothing was thrown).
template <class F> std::optional<cv::Error> error_of(F &&f) {
    try {
        f();
    } catch (const cv::Error &e) {
        return e;
    }
    return std::nullopt;
}

// ---- the recorded reads ---------------------------------------------------------------------

void mesh_read(const Json &r, const std::string &layer, const std::string &what) {
    const cv::Volume &vol = vol_of(layer);
    const std::vector<std::uint64_t> ids = ids_of(r["segids"]);
    const Json &kw = r["kwargs"];
    if (kw.has("concat")) {
        counts["skipped: concat=False (fragment lists)"]++;
        return;
    }
    cv::MeshOptions opts;
    if (kw.has("lod")) opts.lod = static_cast<std::int32_t>(kw["lod"].i64());  // -1 is MeshOptions::coarsest
    if (kw.has("remove_duplicate_vertices")) opts.weld = kw["remove_duplicate_vertices"].boolean;
    if (kw.has("chunk_size")) opts.chunk_size = kw["chunk_size"].vec3i();
    const bool fuse = kw.has("fuse") ? kw["fuse"].boolean : true;
    const bool bad = r["bad"].boolean;
    const bool multilod = is_multilod(vol);

    if (r.has("error")) {
        const std::string ty = r["error"]["type"].str();
        const std::string message = r["error"]["message"].kind == Json::String ? r["error"]["message"].str() : "";
        auto ours = [&]() {
            if (multilod)
                (void)vol.meshes_each(ids, opts);
            else
                (void)vol.mesh(ids, opts);
        };
        if (ty == "AttributeError") {
            // cloud-volume's unsharded lod=-1 crashes; here it is the coarsest lod.
            const auto e = error_of(ours);
            CHECK(!e, what << ": threw " << (e ? e->what() : ""));
            counts["cloud-volume crashed, ours reads"]++;
            return;
        }
        if (contains(message, "need at least one array")) {
            // A manifest listing no fragments: an empty mesh here.
            try {
                const cv::Mesh m = vol.mesh(ids, opts);
                CHECK(m.empty(), what << ": " << m.vertices.size() << " vertices");
            } catch (const cv::Error &e) {
                CHECK(false, what << ": threw " << e.code_name() << ": " << e.what());
            }
            counts["cloud-volume crashed, ours reads"]++;
            return;
        }
        const auto e = error_of(ours);
        CHECK(e.has_value(), what << ": did not throw (cloud-volume: " << ty << ")");
        if (!e) return;
        if ((ty == "ValueError" || ty == "TypeError" || ty == "MeshMissingError") && !bad) {
            CHECK(e->code() == CV_ERR_NOT_FOUND, what << ": " << e->code_name() << ": " << e->what());
        } else if (ty == "MeshDecodeError" && !bad) {
            CHECK(e->code() == CV_ERR_INVALID_ARGUMENT, what << ": " << e->code_name() << ": " << e->what());
        } else {
            CHECK(e->code() == CV_ERR_DECODE || e->code() == CV_ERR_NOT_FOUND,
                  what << ": " << e->code_name() << ": " << e->what());
        }
        CHECK(std::strlen(e->what()) > 0, what << ": empty message");
        counts["errors"]++;
        return;
    }

    const Json &out = r["outputs"];
    const Json &items = out["items"];
    if (bad && items.size() == 0) {
        // The lod lies past the end of a short data file: cloud-volume returns nothing; here a
        // clear error naming the file.
        const auto e = error_of([&]() { (void)vol.meshes_each(ids, opts); });
        CHECK(e && e->code() == CV_ERR_DECODE && (contains(e->what(), "past the end") || contains(e->what(), "ends at")),
              what << ": " << (e ? e->what() : "did not throw"));
        counts["cloud-volume silent, ours refuses"]++;
        return;
    }
    try {
        if (out["result_type"].str() == "Mesh") {
            CHECK(fuse, what);
            expect_mesh(items[0], vol.mesh(ids, opts), what);
        } else {
            // Per id: legacy fuse=False (never welded) or multi-resolution.
            cv::MeshOptions each = opts;
            if (!fuse) each.weld = false;
            const std::vector<std::optional<cv::Mesh>> got = vol.meshes_each(ids, each);
            CHECK(got.size() == ids.size(), what << ": " << got.size() << " results for " << ids.size() << " ids");
            std::vector<std::uint64_t> keys;
            for (const Json &k : out["keys"].items) keys.push_back(std::stoull(k.text));
            for (std::size_t k = 0; k < ids.size() && k < got.size(); k++) {
                const std::string w = what + " [" + std::to_string(ids[k]) + "]";
                CHECK(got[k].has_value(), w << ": no mesh");
                if (!got[k]) continue;
                const Json *item = nullptr;
                for (const Json &it : items.items)
                    if (it["segid"].kind == Json::Number && std::stoull(it["segid"].text) == ids[k]) item = &it;
                if (item != nullptr) {
                    expect_mesh(*item, *got[k], w);
                } else {
                    // cloud-volume leaves out an id whose lod has no fragment data.
                    CHECK(std::find(keys.begin(), keys.end(), ids[k]) == keys.end(), w);
                    CHECK(got[k]->empty(), w << ": " << got[k]->vertices.size() << " vertices");
                }
            }
        }
    } catch (const cv::Error &e) {
        CHECK(false, what << ": threw " << e.code_name() << ": " << e.what());
    }
    counts[multilod ? "multi-resolution reads" : "legacy reads"]++;
}

/// The skeleton equals cloud-volume's recorded item.
void expect_skeleton(const Json &it, const cv::Skeleton &s, const std::string &what) {
    const std::vector<float> want_v = f32s(npy(it["vertices"].str()).data), got_v = flat(s.vertices);
    CHECK(got_v.size() == want_v.size(), what << ": " << s.vertices.size() << " vertices, cloud-volume " << want_v.size() / 3);
    const long d = bit_difference(got_v, want_v);
    CHECK(d < 0, what << ": vertex coordinate " << d << " differs from cloud-volume's");
    CHECK(flat(s.edges) == u32s(npy(it["edges"].str()).data), what << ": edges differ");
    const Json &attrs = it["attributes"];
    CHECK(s.attributes.size() == attrs.size(), what << ": " << s.attributes.size() << " attributes, cloud-volume "
                                                    << attrs.size());
    for (const auto &m : attrs.members) {
        const cv::SkeletonAttribute *a = s.attribute(m.first);
        CHECK(a != nullptr, what << ": no attribute " << m.first);
        if (a == nullptr) continue;
        const Npy want = npy(m.second["file"].str());
        CHECK(a->data == want.data, what << ": attribute " << m.first << " differs");
        CHECK(std::string(cv::name(a->data_type)) == m.second["dtype"].str(),
              what << ": attribute " << m.first << " is " << cv::name(a->data_type) << ", cloud-volume's "
                   << m.second["dtype"].str());
        const std::uint32_t comps =
            m.second["shape"].size() > 1 ? static_cast<std::uint32_t>(m.second["shape"][1].i64()) : 1;
        CHECK(a->components == comps, what << ": attribute " << m.first << " has " << a->components << " components");
        CHECK(a->vertex_count() == s.vertices.size(), what << ": attribute " << m.first);
    }
}

void skeleton_read(const Json &r, const std::string &layer, const std::string &what) {
    const cv::Volume &vol = vol_of(layer);
    const std::vector<std::uint64_t> ids = ids_of(r["segids"]);
    if (r.has("error")) {
        const auto e = error_of([&]() { (void)vol.skeletons(ids); });
        if (r["error"]["type"].str() == "KeyError") {
            // cloud-volume requires a transform; here the identity (an attribute cut short is
            // refused, as everywhere).
            CHECK(!e || contains(e->what(), "ends inside"), what << ": " << e->what());
            counts["cloud-volume KeyError, ours reads"]++;
            return;
        }
        CHECK(e && (e->code() == CV_ERR_DECODE || e->code() == CV_ERR_NOT_FOUND),
              what << ": " << (e ? e->what() : "did not throw"));
        if (ids.size() == 1) {
            const auto one = error_of([&]() { (void)vol.skeleton(ids[0]); });
            CHECK(one && one->code() == (e ? e->code() : CV_OK), what << ": skeleton(id) " << (one ? one->what() : "read"));
        }
        counts["errors"]++;
        return;
    }
    const Json &items = r["outputs"]["items"];
    bool short_attribute = false;
    for (const auto &a : items[0]["attributes"].members)
        short_attribute = short_attribute || a.second["shape"][0].i64() != items[0]["vertex_count"].i64();
    if ((layer == "bad/skeletons" && ids == std::vector<std::uint64_t>{101}) || short_attribute) {
        // An edge past the vertices, or an attribute with fewer values than vertices: refused.
        const auto e = error_of([&]() { (void)vol.skeletons(ids); });
        CHECK(e && e->code() == CV_ERR_DECODE && (contains(e->what(), "vertex 75 of 50") || contains(e->what(), "ends inside")),
              what << ": " << (e ? e->what() : "did not throw"));
        counts["cloud-volume silent, ours refuses"]++;
        return;
    }
    try {
        const std::vector<std::optional<cv::Skeleton>> got = vol.skeletons(ids);
        CHECK(got.size() == ids.size(), what);
        for (const Json &it : items.items) {
            const std::uint64_t id = std::stoull(it["segid"].text);
            const auto pos = static_cast<std::size_t>(std::find(ids.begin(), ids.end(), id) - ids.begin());
            CHECK(pos < got.size() && got[pos].has_value(), what << ": no skeleton " << id);
            if (pos >= got.size() || !got[pos]) continue;
            expect_skeleton(it, *got[pos], what + " [" + std::to_string(id) + "]");
            if (ids.size() == 1) expect_skeleton(it, vol.skeleton(id), what + " skeleton(id)");
        }
    } catch (const cv::Error &e) {
        CHECK(false, what << ": threw " << e.code_name() << ": " << e.what());
    }
    counts["skeleton reads"]++;
}

void mesh_exists(const Json &r, const std::string &layer, const std::string &what) {
    const cv::Volume &vol = vol_of(layer);
    const std::vector<std::uint64_t> ids = ids_of(r["segids"]);
    const Json &value = r["outputs"]["value"];
    for (std::size_t k = 0; k < ids.size(); k++) {
        // A dict {id: path or null}, or (sharded multi-resolution) a list of manifests or nulls.
        bool there = false;
        if (value.kind == Json::Array)
            there = value[k].kind != Json::Null;
        else
            there = value.has(std::to_string(ids[k])) && value[std::to_string(ids[k])].kind != Json::Null;
        const auto e = error_of([&]() { (void)vol.mesh_lods(ids[k]); });
        // cloud-volume's unsharded multi-resolution exists() looks in the working directory (a
        // bug): false for every id there.
        if (there || layer.rfind("multilod", 0) != 0 || layer == "multilod_sharded") {
            CHECK(!e == there, what << " " << ids[k] << ": " << (e ? e->what() : "has a mesh"));
            if (e) CHECK(e->code() == CV_ERR_NOT_FOUND, what << " " << ids[k] << ": " << e->code_name());
        }
    }
    counts["exists"]++;
}

void recorded_reads(const Json &manifest) {
    std::size_t index = 0;
    for (const Json &r : manifest["reads"].items) {
        index++;
        const std::string call = r["call"].str();
        // --quick: every error, and one read in six of the others.
        if (quick && !r.has("error") && index % 6 != 0) continue;
        const std::string layer = r["layer"].str();
        const std::string what = layer + ": " + r["python"].str();
        try {
            if (call == "mesh.get")
                mesh_read(r, layer, what);
            else if (call == "skeleton.get")
                skeleton_read(r, layer, what);
            else if (call == "mesh.exists")
                mesh_exists(r, layer, what);
            else
                CHECK(false, "unknown call " << call);
        } catch (const cv::Error &e) {
            CHECK(false, what << ": unexpected " << e.code_name() << ": " << e.what());
        }
    }
    std::cout << "meshes: recorded reads:";
    for (const auto &c : counts) std::cout << " " << c.first << " " << c.second << ";";
    std::cout << std::endl;
    if (quick) {
        CHECK(counts["legacy reads"] >= 15 && counts["multi-resolution reads"] >= 30 && counts["skeleton reads"] >= 4 &&
                  counts["errors"] >= 20,
              "too few cases for --quick");
    } else {
        CHECK(counts["legacy reads"] >= 120 && counts["multi-resolution reads"] >= 270, "too few mesh reads");
        CHECK(counts["skeleton reads"] >= 30 && counts["errors"] >= 20, "too few skeleton reads or errors");
    }
}

// ---- saved texts ----------------------------------------------------------------------------

std::vector<std::string> split(const std::string &s, char sep) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : s) {
        if (c == sep) {
            out.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    out.push_back(cur);
    return out;
}

std::string join(const std::vector<std::string> &v, std::size_t from, std::size_t to) {
    std::string s;
    for (std::size_t i = from; i < to && i < v.size(); i++) s += (i > from ? " " : "") + v[i];
    return s;
}

/// An SWC text as a forest: the rows' (type, x, y, z, radius) and each parent link as an
/// undirected pair of positions, both sorted; plus its # SCALE line.
struct SwcTree {
    std::vector<std::string> nodes;
    std::vector<std::pair<std::string, std::string>> links;
    std::string scale;
    bool operator==(const SwcTree &o) const { return nodes == o.nodes && links == o.links && scale == o.scale; }
};
SwcTree swc_tree(const std::string &text) {
    std::vector<std::vector<std::string>> rows;
    SwcTree t;
    for (std::string line : split(text, '\n')) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.rfind("# SCALE", 0) == 0 && t.scale.empty()) t.scale = line;
        if (line.empty() || line[0] == '#' || line.find_first_not_of(" \t") == std::string::npos) continue;
        rows.push_back(split(line, ' '));
    }
    std::map<std::string, const std::vector<std::string> *> by_n;
    for (const auto &r : rows)
        if (!r.empty()) by_n[r[0]] = &r;
    for (const auto &r : rows) {
        if (r.size() < 7) {
            t.nodes.push_back("short row: " + join(r, 0, r.size()));
            continue;
        }
        t.nodes.push_back(join(r, 1, 6));
        const auto p = by_n.find(r[6]);
        if (p == by_n.end()) continue;
        std::string a = join(r, 2, 5), b = join(*p->second, 2, 5);
        if (b < a) std::swap(a, b);
        t.links.emplace_back(a, b);
    }
    std::sort(t.nodes.begin(), t.nodes.end());
    std::sort(t.links.begin(), t.links.end());
    return t;
}

std::string text_of(const std::string &path) {
    const std::vector<unsigned char> b = harness::read_file(path);
    return std::string(b.begin(), b.end());
}

void saved_texts(const Json &manifest, const harness::TempDir &tmp) {
    int n = 0;
    for (const Json &t : manifest["texts"].items) {
        const std::string layer = t["layer"].str(), format = t["format"].str();
        const std::uint64_t id = std::stoull(t["segid"].text);
        const std::string what = layer + " " + std::to_string(id) + " " + format;
        const std::string want = text_of(dir + "/" + t["file"].str());
        const std::string out = tmp.path() + "/saved." + std::to_string(n) + "." + format;
        try {
            const cv::Volume &vol = vol_of(layer);
            if (format == "obj" || format == "ply") {
                vol.save_mesh(id, out);
                const std::string got = text_of(out);
                CHECK(got == want, what << ": " << got.size() << " bytes differ from cloud-volume's " << want.size());
            } else if (format == "swc") {
                vol.save_skeleton(id, out);
                const SwcTree got = swc_tree(text_of(out)), w = swc_tree(want);
                // (Skeleton 4 is a single vertex without edges: no rows in either.)
                CHECK(got.nodes == w.nodes, what << ": rows differ (" << got.nodes.size() << " vs " << w.nodes.size() << ")");
                CHECK(got.links == w.links, what << ": parent links differ");
                CHECK(!w.scale.empty() && got.scale == w.scale, what << ": \"" << got.scale << "\" vs \"" << w.scale << "\"");
            } else {
                CHECK(false, what << ": unknown format");
            }
        } catch (const cv::Error &e) {
            CHECK(false, what << ": threw " << e.code_name() << ": " << e.what());
        }
        n++;
    }
    CHECK(n == 9, n << " texts in the manifest");
    // STL: binary, 84 bytes of header and count, 50 per triangle.
    const cv::Volume &ml = vol_of("multilod_sharded");
    const cv::MeshOptions lod1 = mo(1);
    const std::string stl = tmp.path() + "/m.stl";
    ml.save_mesh({3, 4}, stl, lod1);
    const cv::Mesh m = ml.mesh({3, 4}, lod1);
    CHECK(std::filesystem::file_size(stl) == 84 + 50 * m.faces.size(),
          "STL of " << m.faces.size() << " faces has " << std::filesystem::file_size(stl) << " bytes");
    EXPECT_THROW(cv::InvalidArgument, "save_mesh to .dae", ml.save_mesh(3, tmp.path() + "/m.dae"),
                 CV_ERR_INVALID_ARGUMENT, ".obj, .ply or .stl");
    EXPECT_THROW(cv::IoError, "save_mesh into a missing directory", ml.save_mesh(3, tmp.path() + "/no/such/m.obj"),
                 CV_ERR_IO, "no/such");
    EXPECT_THROW(cv::NotFound, "save_mesh of a missing id", ml.save_mesh(999999, tmp.path() + "/x.obj"),
                 CV_ERR_NOT_FOUND, "999999");
    CHECK(!std::filesystem::exists(tmp.path() + "/x.obj"), "save_mesh of a missing id wrote a file");
    EXPECT_THROW(cv::NotFound, "save_skeleton of a missing id",
                 vol_of("skeletons").save_skeleton(999999, tmp.path() + "/x.swc"), CV_ERR_NOT_FOUND, "999999");
    const cv::Volume &sk = vol_of("skeletons_sharded");
    sk.save_skeleton(1, tmp.path() + "/s.swc");
    std::size_t rows = 0;
    for (const std::string &l : split(text_of(tmp.path() + "/s.swc"), '\n'))
        if (!l.empty() && l[0] != '#') rows++;
    CHECK(rows == sk.skeleton(1).vertices.size(), "SWC of skeletons_sharded 1 has " << rows << " rows");
}

// ---- writes ---------------------------------------------------------------------------------

void copy_file(const std::string &from, const std::string &to) {
    std::filesystem::create_directories(std::filesystem::path(to).parent_path());
    std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing);
}

void writes(const harness::TempDir &tmp) {
    const std::string base = tmp.path() + "/w";
    copy_file(dir + "/legacy/info", base + "/legacy/info");
    copy_file(dir + "/skeletons/info", base + "/skeletons/info");
    copy_file(dir + "/skeletons/skeletons/info", base + "/skeletons/skeletons/info");

    // Legacy meshes: what is read, written, reads back the same.
    const cv::Volume &src = vol_of("legacy");
    const cv::Volume dst = cv::Volume::open(url_of(base, "legacy"));
    int n = 0;
    for (std::uint64_t id : {std::uint64_t{1}, std::uint64_t{2}, std::uint64_t{4294967297}}) {
        const cv::Mesh m = src.mesh(id);
        CHECK(!m.empty(), "legacy " << id << " is empty");
        dst.put_mesh(id, m);
        CHECK(same_bits(dst.mesh(id), m), "legacy " << id << " written and read back differs");
        CHECK(dst.mesh_lods(id) == 1, "legacy " << id);
        n++;
    }
    // A rewrite replaces the mesh; a face past the vertices is refused and leaves it.
    cv::Mesh tri;
    tri.vertices = {{0.f, 0.f, 0.f}, {1.f, 0.f, 0.f}, {0.f, 1.f, 0.f}};
    tri.faces = {{0, 1, 2}};
    dst.put_mesh(2, tri);
    const cv::MeshOptions raw = mo(0, false);
    CHECK(dst.mesh(2, raw) == tri, "the rewritten mesh 2 reads back differently");
    cv::Mesh bad = tri;
    bad.faces = {{0, 1, 3}};
    EXPECT_THROW(cv::InvalidArgument, "put_mesh with a face past the vertices", dst.put_mesh(2, bad),
                 CV_ERR_INVALID_ARGUMENT);
    CHECK(dst.mesh(2, raw) == tri, "a refused put_mesh changed mesh 2");
    dst.put_mesh(77, cv::Mesh{});
    CHECK(dst.mesh(77).empty(), "an empty mesh written reads back non-empty");
    EXPECT_THROW(cv::Unsupported, "put_mesh into a multi-resolution directory", vol_of("multilod_sharded").put_mesh(5, tri),
                 CV_ERR_UNSUPPORTED);

    // Skeletons with their four attributes, back to stored space (a diagonal transform with
    // exact values), written, read back equal to what was read.
    const cv::Volume &ssrc = vol_of("skeletons");
    const cv::Volume sdst = cv::Volume::open(url_of(base, "skeletons"));
    const Json info = harness::parse_json(ssrc.skeleton_info());
    const Json &t = info["transform"];
    CHECK(t.size() == 12, "skeleton info transform: " << t.dump());
    for (std::uint64_t id : {1, 2, 3}) {
        const cv::Skeleton s = ssrc.skeleton(id);
        cv::Skeleton stored = s;
        for (auto &v : stored.vertices)
            for (std::size_t r = 0; r < 3; r++)
                v[r] = static_cast<float>((v[r] - static_cast<float>(t[4 * r + 3].num())) / static_cast<float>(t[5 * r].num()));
        sdst.put_skeleton(id, stored);
        const cv::Skeleton back = sdst.skeleton(id);
        CHECK(bit_difference(flat(back.vertices), flat(s.vertices)) < 0, "skeleton " << id << ": vertices read back differ");
        CHECK(back.edges == s.edges, "skeleton " << id << ": edges read back differ");
        CHECK(back.attributes.size() == 4, "skeleton " << id << ": " << back.attributes.size() << " attributes");
        for (const cv::SkeletonAttribute &a : s.attributes) {
            const cv::SkeletonAttribute *b = back.attribute(a.name);
            CHECK(b != nullptr && b->data == a.data && b->data_type == a.data_type && b->components == a.components,
                  "skeleton " << id << ": attribute " << a.name << " read back differs");
        }
        n++;
    }
    // Attributes in another order are matched by name.
    {
        cv::Skeleton s = ssrc.skeleton(4);
        std::reverse(s.attributes.begin(), s.attributes.end());
        sdst.put_skeleton(4, s);
        const cv::Skeleton back = sdst.skeleton(4);
        CHECK(back.attributes.size() == 4 && back.attributes[0].name == "radius" &&
                  back.attribute("direction") != nullptr && back.attribute("direction")->data == s.attribute("direction")->data,
              "skeleton 4 with reversed attributes read back differs");
    }
    // A skeleton built here, with typed attributes.
    {
        cv::Skeleton s;
        s.vertices = {{0.f, 0.f, 0.f}, {1.f, 2.f, 3.f}, {4.f, 5.f, 6.f}};
        s.edges = {{0, 1}, {1, 2}};
        s.attributes.push_back(cv::SkeletonAttribute::of<float>("radius", {1.5f, 2.5f, 3.5f}));
        s.attributes.push_back(cv::SkeletonAttribute::of<std::uint8_t>("vertex_types", {1, 2, 3}));
        s.attributes.push_back(cv::SkeletonAttribute::of<std::int16_t>("compartment", {-1, 0, 7}));
        s.attributes.push_back(cv::SkeletonAttribute::of<float>("direction", {1, 0, 0, 0, 1, 0, 0, 0, 1}, 3));
        sdst.put_skeleton(50, s);
        const cv::Skeleton back = sdst.skeleton(50);
        CHECK(back.vertices.size() == 3 && back.vertices[1][0] == 1.f * static_cast<float>(t[0].num()) +
                                                                      static_cast<float>(t[3].num()),
              "skeleton 50: vertex 1 x " << (back.vertices.size() > 1 ? back.vertices[1][0] : -1.f));
        CHECK(back.edges == s.edges, "skeleton 50: edges");
        const std::vector<std::int16_t> want_compartment{-1, 0, 7};
        const std::vector<float> want_radius{1.5f, 2.5f, 3.5f};
        CHECK(back.attribute("compartment") && back.attribute("compartment")->values<std::int16_t>() == want_compartment,
              "skeleton 50: compartment");
        CHECK(back.attribute("radius") && back.attribute("radius")->values<float>() == want_radius, "skeleton 50: radius");

        // The wrapper's refusals, before anything is written.
        cv::Skeleton missing = s;
        missing.attributes.pop_back();
        EXPECT_THROW(cv::InvalidArgument, "put_skeleton without one declared attribute", sdst.put_skeleton(51, missing),
                     CV_ERR_INVALID_ARGUMENT, "direction");
        cv::Skeleton extra = s;
        extra.attributes.push_back(cv::SkeletonAttribute::of<float>("colour", {0, 0, 0}));
        EXPECT_THROW(cv::InvalidArgument, "put_skeleton with an undeclared attribute", sdst.put_skeleton(51, extra),
                     CV_ERR_INVALID_ARGUMENT, "colour");
        cv::Skeleton wrong_type = s;
        wrong_type.attributes[2] = cv::SkeletonAttribute::of<std::int32_t>("compartment", {-1, 0, 7});
        EXPECT_THROW(cv::InvalidArgument, "put_skeleton with an attribute of the wrong type",
                     sdst.put_skeleton(51, wrong_type), CV_ERR_INVALID_ARGUMENT, "compartment", "int16");
        cv::Skeleton short_attr = s;
        short_attr.attributes[0] = cv::SkeletonAttribute::of<float>("radius", {1.f, 2.f});
        EXPECT_THROW(cv::InvalidArgument, "put_skeleton with an attribute cut short", sdst.put_skeleton(51, short_attr),
                     CV_ERR_INVALID_ARGUMENT, "radius", "3 vertices");
        CHECK(!sdst.skeletons({51}, true)[0].has_value(), "a refused put_skeleton wrote skeleton 51");
        cv::Skeleton bad_edge = s;
        bad_edge.edges.push_back({2, 3});
        EXPECT_THROW(cv::InvalidArgument, "put_skeleton with an edge past the vertices", sdst.put_skeleton(51, bad_edge),
                     CV_ERR_INVALID_ARGUMENT);
        EXPECT_THROW(cv::Unsupported, "put_skeleton into a sharded directory", vol_of("skeletons_sharded").put_skeleton(60, s),
                     CV_ERR_UNSUPPORTED);
    }
    std::cout << "meshes: " << n << " objects written and read back" << std::endl;
}

// ---- the API's own cases --------------------------------------------------------------------

void api_cases() {
    const cv::Volume &ml = vol_of("multilod_sharded");
    // Per id, a missing one: NotFound for the whole call, or std::nullopt when allowed.
    EXPECT_THROW(cv::NotFound, "meshes_each with a missing id", ml.meshes_each({3, 4, 999999}), CV_ERR_NOT_FOUND,
                 "999999");
    const cv::MeshOptions allow = mo(0, std::nullopt, true);
    const auto each = ml.meshes_each({3, 4, 999999}, allow);
    CHECK(each.size() == 3 && each[0] && each[1] && !each[2], "meshes_each with allow_missing");
    const cv::Mesh m3 = ml.mesh(3);
    CHECK(each.size() == 3 && each[0] && same_bits(*each[0], m3), "meshes_each's first equals mesh(3)");
    CHECK(!m3.empty(), "multilod_sharded 3 is empty");
    CHECK(ml.meshes_each({}).empty(), "meshes_each of no ids");
    // Fused: in id order, the second's indices after the first's vertices.
    const cv::Mesh m4 = ml.mesh(4);
    const cv::Mesh fused = ml.mesh({3, 4});
    CHECK(fused.vertices.size() == m3.vertices.size() + m4.vertices.size() &&
              fused.faces.size() == m3.faces.size() + m4.faces.size(),
          "mesh({3, 4}) sizes");
    if (fused.faces.size() == m3.faces.size() + m4.faces.size() && !m4.faces.empty()) {
        const auto off = static_cast<std::uint32_t>(m3.vertices.size());
        const auto &f = fused.faces[m3.faces.size()];
        CHECK(f[0] == m4.faces[0][0] + off && f[1] == m4.faces[0][1] + off && f[2] == m4.faces[0][2] + off,
              "mesh({3, 4}): 4's faces offset by 3's vertices");
    }
    CHECK(same_bits(ml.mesh({3, 999999}, allow), m3), "mesh({3, 999999}) with allow_missing equals mesh(3)");
    EXPECT_THROW(cv::NotFound, "mesh of a missing id", ml.mesh(999999), CV_ERR_NOT_FOUND, "999999");
    // Levels of detail.
    CHECK(ml.mesh_lods(3) == 3, "multilod_sharded 3 has " << ml.mesh_lods(3) << " lods");
    EXPECT_THROW(cv::NotFound, "mesh_lods of a missing id", ml.mesh_lods(999999), CV_ERR_NOT_FOUND);
    const cv::MeshOptions coarsest = mo(cv::MeshOptions::coarsest), lod2 = mo(2);
    CHECK(same_bits(ml.mesh(3, coarsest), ml.mesh(3, lod2)), "the coarsest lod of 3 is lod 2");
    CHECK(ml.mesh(3, lod2).vertices.size() < m3.vertices.size(), "lod 2 of 3 is not coarser than lod 0");
    EXPECT_THROW(cv::InvalidArgument, "mesh at lod 7", ml.mesh(3, mo(7)), CV_ERR_INVALID_ARGUMENT);
    EXPECT_THROW(cv::InvalidArgument, "mesh at lod -2", ml.mesh(3, mo(-2)), CV_ERR_INVALID_ARGUMENT, "lod");
    EXPECT_THROW(cv::InvalidArgument, "meshes_each at lod 7", ml.meshes_each({3}, mo(7)),
                 CV_ERR_INVALID_ARGUMENT);
    EXPECT_THROW(cv::InvalidArgument, "mesh of no ids", ml.mesh(std::vector<std::uint64_t>{}), CV_ERR_INVALID_ARGUMENT);
    const Json mi = harness::parse_json(ml.mesh_info());
    CHECK(mi["@type"].str() == "neuroglancer_multilod_draco" && mi["sharded"].boolean, "mesh_info: " << ml.mesh_info());

    const cv::Volume &lg = vol_of("legacy");
    CHECK(harness::parse_json(lg.mesh_info())["@type"].str() == "neuroglancer_legacy_mesh", lg.mesh_info());
    CHECK(lg.mesh_lods(1) == 1, "legacy 1 lods");
    const cv::MeshOptions unwelded = mo(0, false), welded = mo(0, true), chunked = mo(0, std::nullopt, false, cv::Vec3i{32, 32, 16});
    const cv::Mesh w = lg.mesh(1), u = lg.mesh(1, unwelded), c = lg.mesh(1, chunked);
    CHECK(same_bits(lg.mesh(1, welded), w), "weld true is legacy's default");
    CHECK(u.vertices.size() > c.vertices.size() && c.vertices.size() >= w.vertices.size() && u.faces.size() == w.faces.size(),
          "legacy 1 vertices: unwelded " << u.vertices.size() << ", chunk-welded " << c.vertices.size() << ", welded "
                                         << w.vertices.size());
    const auto le = lg.meshes_each({1, 2, 999999}, mo(0, false, true));
    CHECK(le.size() == 3 && le[0] && same_bits(*le[0], u) && le[1] && !le[2], "legacy meshes_each with allow_missing");

    // Skeletons.
    const cv::Volume &sk = vol_of("skeletons_sharded");
    const auto two = sk.skeletons({1, 2});
    CHECK(two.size() == 2 && two[0] && two[1], "skeletons({1, 2})");
    if (two.size() == 2 && two[1]) {
        const cv::Skeleton &s = *two[1];
        CHECK(s.attributes.size() == 4, s.attributes.size() << " attributes");
        const cv::SkeletonAttribute *d = s.attribute("direction");
        CHECK(d && d->data_type == cv::DataType::float32 && d->components == 3 &&
                  d->values<float>().size() == 3 * s.vertices.size(),
              "skeleton 2's direction");
        if (d) EXPECT_THROW(cv::TypeMismatch, "direction as double", d->values<double>(), CV_ERR_INVALID_ARGUMENT, "float32");
        const cv::SkeletonAttribute *vt = s.attribute("vertex_types");
        CHECK(vt && vt->values<std::uint8_t>().size() == s.vertices.size(), "skeleton 2's vertex_types");
        CHECK(s.attribute("nonesuch") == nullptr, "an attribute that is not there");
        bool in_range = true;
        for (const auto &e : s.edges) in_range = in_range && e[0] < s.vertices.size() && e[1] < s.vertices.size();
        CHECK(in_range && !s.edges.empty(), "skeleton 2's edges");
    }
    const auto some = sk.skeletons({1, 999999}, true);
    CHECK(some.size() == 2 && some[0] && !some[1], "skeletons with allow_missing");
    EXPECT_THROW(cv::NotFound, "skeletons with a missing id", sk.skeletons({1, 999999}), CV_ERR_NOT_FOUND, "999999");
    EXPECT_THROW(cv::NotFound, "skeleton of a missing id", sk.skeleton(999999), CV_ERR_NOT_FOUND, "999999");
    CHECK(sk.skeletons({}).empty(), "skeletons of no ids");
    const std::string si = sk.skeleton_info();
    CHECK(contains(si, "compartment") && harness::parse_json(si)["sharded"].boolean, "skeleton_info: " << si);
    const std::vector<cv::SkeletonAttributeInfo> ai = sk.skeleton_attributes();
    CHECK(ai.size() == 4 && ai[0].name == "radius" && ai[0].data_type == cv::DataType::float32 && ai[1].name == "vertex_types" &&
              ai[1].data_type == cv::DataType::uint8 && ai[2].name == "compartment" &&
              ai[2].data_type == cv::DataType::int16 && ai[3].name == "direction" && ai[3].components == 3,
          "skeleton_attributes of " << si);
    // The layer without a skeleton info: cloud-volume's defaults.
    const cv::Volume &noinfo = vol_of("skel_defaults/noinfo");
    const auto nd = noinfo.skeleton_attributes();
    CHECK(nd.size() == 2 && nd[0].name == "radius" && nd[1].name == "vertex_types", "defaults: " << noinfo.skeleton_info());

    // An empty Volume refuses before calling the library.
    cv::Volume empty;
    EXPECT_THROW(cv::InvalidArgument, "mesh of an empty Volume", empty.mesh(1), CV_ERR_INVALID_ARGUMENT, "empty Volume");
    EXPECT_THROW(cv::InvalidArgument, "skeletons of an empty Volume", empty.skeletons({1}), CV_ERR_INVALID_ARGUMENT,
                 "empty Volume");
    EXPECT_THROW(cv::InvalidArgument, "put_skeleton on an empty Volume", empty.put_skeleton(1, cv::Skeleton{}),
                 CV_ERR_INVALID_ARGUMENT, "empty Volume");
}

}  // namespace

int main(int argc, char **argv) {
    std::string ref;
    for (int i = 1; i < argc; i++) {
        if (std::string(argv[i]) == "--quick")
            quick = true;
        else
            ref = argv[i];
    }
    if (ref.empty()) {
        const char *e = std::getenv("CV_REFERENCE_DIR");
        ref = e ? e : "";
    }
    dir = ref + "/meshes";
    if (ref.empty() || !std::filesystem::exists(dir + "/manifest.json"))
        return harness::missing_reference("test_objects", ref.empty() ? "$CV_REFERENCE_DIR/meshes" : dir);
    harness::verbose = false;
    std::cout << "cloudvolume " << cv::version() << ", mesh fixture in " << dir << (quick ? " (--quick)" : "") << std::endl;
    try {
        const Json manifest = harness::read_json(dir + "/manifest.json");
        const harness::TempDir tmp("objects");
        recorded_reads(manifest);
        saved_texts(manifest, tmp);
        writes(tmp);
        api_cases();
    } catch (const cv::Error &e) {
        CHECK(false, "unexpected " << e.code_name() << ": " << e.what());
    } catch (const std::exception &e) {
        CHECK(false, "unexpected exception: " << e.what());
    }
    vols.clear();
    // The count first, so scripts/test_cpp.sh's summary shows it.
    std::cout << harness::checks << " checks, " << harness::failures << " failures (test_objects)" << std::endl;
    return harness::failures == 0 ? 0 : 1;
}
