// Graphene meshes through the C++ wrapper (cloudvolume::Volume::mesh, meshes_each, mesh_lods)
// against the loopback chunkedgraph double (tests/servers/chunkedgraph.py) serving the fixture
// tests/reference/graphene_meshes.py writes (cloud-volume 12.15.2's reads of every case through
// the same double, as .npy files), compared as tests/graphene_meshes.rs compares them:
// - every recorded read of every table (meshes, levels, chunkstart, chunkstart_noflag) that the
//   library offers (not bounding_box / bypass / use_byte_offsets, not the cases handed an
//   "info"): options {} -> MeshOptions defaults (lod 0, weld as the library's default);
//   remove_duplicate_vertices -> weld true; deduplicate_chunk_boundaries false -> weld false;
//   allow_missing; fuse -> Volume::mesh of all the ids, else meshes_each; the mip and timestamp
//   options at open. Vertices bit for bit and faces exactly, both in cloud-volume's order; an id
//   cloud-volume left out (allow_missing) a std::nullopt in its place;
// - the meshless roots cloud-volume raised on ("No meshes found.") -> NotFound naming the id;
// - the API's own cases: mesh_lods is 1, lod 1 is InvalidArgument, a wrong or forbidden token at
//   open is AuthError, an unknown table NotFound.
//
// usage: test_graphene_meshes [--quick]   (--quick: a few reads per table, for valgrind)
//   environment: CV_GRAPHENE_MESH_URL=graphene://http://127.0.0.1:PORT/segmentation/table (the
//   double scripts/test_cpp.sh starts, with the fixture's token) and CV_GRAPHENE_MESH_DIR (the
//   fixture, with manifest.json). Without them: a skip (77), a failure with CV_REQUIRE_REFERENCE=1.
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

std::string dir;   // the fixture
std::string base;  // graphene://http://127.0.0.1:PORT/segmentation/table
bool quick = false;
std::map<std::string, int> counts;

std::string env(const char *name) {
    const char *v = std::getenv(name);
    return v != nullptr ? std::string(v) : std::string();
}

// ---- .npy files (float32 / uint32, N x 3) ---------------------------------------------------

using harness::Npy;

Npy npy(const std::string &rel) { return harness::read_npy(dir + "/" + rel); }

std::vector<std::uint32_t> words(const std::vector<unsigned char> &b) {
    std::vector<std::uint32_t> v(b.size() / 4);
    if (!v.empty()) std::memcpy(v.data(), b.data(), v.size() * 4);
    return v;
}

/// The vertices' bit patterns, x y z per vertex.
std::vector<std::uint32_t> vertex_bits(const cv::Mesh &m) {
    std::vector<std::uint32_t> out(m.vertices.size() * 3);
    if (!out.empty()) std::memcpy(out.data(), m.vertices.front().data(), out.size() * 4);
    return out;
}

std::vector<std::uint32_t> face_words(const cv::Mesh &m) {
    std::vector<std::uint32_t> out;
    out.reserve(m.faces.size() * 3);
    for (const auto &f : m.faces) out.insert(out.end(), f.begin(), f.end());
    return out;
}

long first_difference(const std::vector<std::uint32_t> &a, const std::vector<std::uint32_t> &b) {
    const std::size_t n = std::min(a.size(), b.size());
    for (std::size_t i = 0; i < n; i++)
        if (a[i] != b[i]) return static_cast<long>(i);
    return a.size() == b.size() ? -1 : static_cast<long>(n);
}

std::size_t vertices_compared = 0;

/// The mesh equals cloud-volume's recorded one: vertices bit for bit and faces, in order.
void expect_mesh(const Json &item, const cv::Mesh &got, const std::string &what) {
    const Npy v = npy(item["vertices"].str());
    const Npy f = npy(item["faces"].str());
    CHECK(v.descr == "<f4" && f.descr == "<u4", what << ": .npy types " << v.descr << ", " << f.descr);
    const std::vector<std::uint32_t> want_v = words(v.data), want_f = words(f.data);
    const std::vector<std::uint32_t> got_v = vertex_bits(got), got_f = face_words(got);
    CHECK(got_v.size() == want_v.size(),
          what << ": " << got.vertices.size() << " vertices, cloud-volume " << want_v.size() / 3);
    CHECK(got_f.size() == want_f.size(), what << ": " << got.faces.size() << " faces, cloud-volume " << want_f.size() / 3);
    const long dv = first_difference(got_v, want_v);
    CHECK(dv < 0, what << ": vertex " << dv / 3 << " coordinate " << dv % 3 << " differs in its bits");
    const long df = first_difference(got_f, want_f);
    CHECK(df < 0, what << ": face " << df / 3 << " differs from cloud-volume's");
    CHECK(!got.vertices.empty() && !got.faces.empty(), what << ": an empty mesh");
    vertices_compared += got.vertices.size();
}

std::vector<std::uint64_t> ids_of(const Json &v) {
    std::vector<std::uint64_t> out;
    for (const Json &x : v.items) out.push_back(std::stoull(x.text));
    return out;
}

std::string json_text(const std::string &s) {
    Json j;
    j.kind = Json::String;
    j.text = s;
    return j.dump();
}

std::string url_of(const std::string &table) { return base + "/" + table; }

bool contains(const std::string &s, const std::string &needle) { return s.find(needle) != std::string::npos; }

bool is_true(const Json &o, const char *key) { return o.has(key) && o[key].kind == Json::Bool && o[key].boolean; }

/// The open options of a case: the token, and its mip and timestamp.
std::string open_options(const Json &o, const std::string &token) {
    std::string s = "{\"secrets\":{\"token\":" + json_text(token) + "}";
    if (o.has("mip")) s += ",\"mip\":" + o["mip"].dump();
    if (o.has("timestamp")) s += ",\"timestamp\":" + o["timestamp"].dump();
    return s + "}";
}

/// The MeshOptions of a case (every member given: -Wmissing-field-initializers).
cv::MeshOptions mesh_options(const Json &o) {
    std::optional<bool> weld;
    if (is_true(o, "remove_duplicate_vertices"))
        weld = true;
    else if (o.has("deduplicate_chunk_boundaries") && o["deduplicate_chunk_boundaries"].kind == Json::Bool &&
             !o["deduplicate_chunk_boundaries"].boolean)
        weld = false;
    return cv::MeshOptions{0, weld, is_true(o, "allow_missing"), std::nullopt};
}

// ---- the recorded reads ---------------------------------------------------------------------

void recorded_case(const Json &c, const std::string &token) {
    const std::string id = c["id"].str();
    const std::string table = c["table"].str();
    const std::vector<std::uint64_t> ids = ids_of(c["ids"]);
    const Json &o = c["options"];
    const cv::Volume vol = cv::Volume::open_json(url_of(table), open_options(o, token));
    const cv::MeshOptions mo = mesh_options(o);
    const bool fused = is_true(o, "fuse") || (c["fused"].kind == Json::Bool && c["fused"].boolean);
    if (c["error"].kind != Json::Null) {
        // cloud-volume's IndexError "No meshes found.": a root without a mesh.
        bool thrown = false;
        try {
            if (fused)
                (void)vol.mesh(ids, mo);
            else
                (void)vol.meshes_each(ids, mo);
        } catch (const cv::Error &e) {
            thrown = true;
            CHECK(e.code() == CV_ERR_NOT_FOUND, id << ": " << e.code_name() << ": " << e.what() << " (cloud-volume "
                                                   << c["error"].dump() << ")");
            CHECK(contains(e.what(), std::to_string(ids[0])), id << ": the message names no id: " << e.what());
        }
        CHECK(thrown, id << ": cloud-volume raised " << c["error"].dump() << ", we read it");
        counts["errors (NotFound)"]++;
        return;
    }
    const Json &expected = c["expected"];
    if (fused) {
        const cv::Mesh m = vol.mesh(ids, mo);
        CHECK(expected.size() == 1, id << ": " << expected.size() << " fused meshes recorded");
        if (expected.size() == 1) expect_mesh(expected[0], m, id + " (fused)");
        counts["fused reads"]++;
        return;
    }
    const std::vector<std::optional<cv::Mesh>> each = vol.meshes_each(ids, mo);
    CHECK(each.size() == ids.size(), id << ": " << each.size() << " results for " << ids.size() << " ids");
    std::size_t present = 0;
    for (std::size_t i = 0; i < each.size() && i < ids.size(); i++) {
        const Json *item = nullptr;
        for (const Json &e : expected.items)
            if (e["id"].str() == std::to_string(ids[i])) item = &e;
        if (item == nullptr) {
            // cloud-volume left it out: allow_missing, no mesh.
            CHECK(!each[i].has_value(), id << ": a mesh of " << ids[i] << ", which cloud-volume left out");
            CHECK(mo.allow_missing, id << ": cloud-volume gave no mesh of " << ids[i] << " without allow_missing");
            counts["absent (allow_missing)"]++;
            continue;
        }
        CHECK(each[i].has_value(), id << ": no mesh of " << ids[i]);
        if (!each[i]) continue;
        present++;
        expect_mesh(*item, *each[i], id + " [" + std::to_string(ids[i]) + "]");
    }
    CHECK(present == expected.size(), id << ": " << present << " meshes, cloud-volume " << expected.size());
    counts[mo.allow_missing ? "allow_missing reads" : "reads"]++;
    counts["meshes"] += static_cast<int>(present);
}

void recorded_reads(const Json &manifest) {
    const std::string token = manifest["token"].str();
    std::map<std::string, int> per_table;
    for (const Json &c : manifest["cases"].items) {
        const Json &o = c["options"];
        if (o.has("bounding_box") || o.has("bypass") || o.has("use_byte_offsets") || o.has("info")) {
            counts["skipped (calls not offered, or an info handed over)"]++;
            continue;
        }
        // --quick: two reads per table, every error, fused and allow_missing case.
        const bool special = c["error"].kind != Json::Null || is_true(o, "fuse") || is_true(o, "allow_missing");
        if (quick && !special && per_table[c["table"].str()]++ >= 2) continue;
        try {
            recorded_case(c, token);
        } catch (const cv::Error &e) {
            CHECK(false, c["id"].str() << ": unexpected " << e.code_name() << ": " << e.what());
        } catch (const std::exception &e) {
            CHECK(false, c["id"].str() << ": unexpected exception: " << e.what());
        }
    }
    if (!quick) {
        CHECK(counts["reads"] + counts["allow_missing reads"] >= 60, counts["reads"] << " reads");
        CHECK(counts["errors (NotFound)"] >= 2, counts["errors (NotFound)"] << " errors");
        CHECK(counts["fused reads"] >= 2, counts["fused reads"] << " fused reads");
        CHECK(counts["allow_missing reads"] >= 3 && counts["absent (allow_missing)"] >= 3,
              counts["allow_missing reads"] << " allow_missing reads, " << counts["absent (allow_missing)"] << " absent");
    }
}

// ---- the API's own cases ---------------------------------------------------------------------

void api_cases(const Json &manifest) {
    const std::string token = manifest["token"].str();
    // A plain read of the meshes table, and a meshless root (an error case).
    std::uint64_t plain = 0, meshless = 0;
    for (const Json &c : manifest["cases"].items) {
        if (c["table"].str() != "meshes" || c["options"].size() != 0) continue;
        if (c["error"].kind == Json::Null && plain == 0) plain = ids_of(c["ids"])[0];
        if (c["error"].kind != Json::Null && meshless == 0) meshless = ids_of(c["ids"])[0];
    }
    CHECK(plain != 0 && meshless != 0, "no plain read or meshless root among the cases");
    const std::string opts = "{\"secrets\":{\"token\":" + json_text(token) + "}}";
    const cv::Volume vol = cv::Volume::open_json(url_of("meshes"), opts);
    CHECK(vol.mesh_lods(plain) == 1, "mesh_lods(" << plain << ") = " << vol.mesh_lods(plain));
    EXPECT_THROW(cv::InvalidArgument, "lod 1 of a graphene mesh", vol.mesh(plain, cv::MeshOptions{1, std::nullopt, false, std::nullopt}),
                 CV_ERR_INVALID_ARGUMENT);
    EXPECT_THROW(cv::NotFound, "a meshless root fused", vol.mesh(meshless), CV_ERR_NOT_FOUND, std::to_string(meshless));
    EXPECT_THROW(cv::NotFound, "a meshless root beside a plain one", vol.meshes_each({plain, meshless}), CV_ERR_NOT_FOUND,
                 std::to_string(meshless));
    const cv::MeshOptions allow{0, std::nullopt, true, std::nullopt};
    const auto each = vol.meshes_each({meshless, plain}, allow);
    CHECK(each.size() == 2 && !each[0].has_value() && each[1].has_value() && !each[1]->empty(),
          "allow_missing: nullopt for the meshless root, a mesh for the other");
    // (A fused read may order a mesh's faces otherwise than its read on its own, as cloud-volume's
    // fuse does: each is compared with the same call of the plain id alone.)
    if (each.size() == 2 && each[1]) CHECK(*each[1] == vol.meshes_each({plain})[0].value(), "the same mesh alone");
    CHECK(vol.mesh({meshless, plain}, allow) == vol.mesh(plain), "allow_missing fused: the other mesh alone");
    // Tokens at open (the info request): wrong, and valid without view permission.
    const std::string bad = "{\"secrets\":{\"token\":" + json_text(manifest["bad_token"].str()) + "}}";
    const std::string forbidden = "{\"secrets\":{\"token\":" + json_text(manifest["forbidden_token"].str()) + "}}";
    EXPECT_THROW(cv::AuthError, "a wrong token", cv::Volume::open_json(url_of("meshes"), bad), CV_ERR_AUTH);
    EXPECT_THROW(cv::AuthError, "a forbidden token", cv::Volume::open_json(url_of("meshes"), forbidden), CV_ERR_AUTH);
    EXPECT_THROW(cv::NotFound, "an unknown table", cv::Volume::open_json(url_of("nosuch"), opts), CV_ERR_NOT_FOUND);
}

}  // namespace

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (std::string(argv[i]) == "--quick") quick = true;
    base = env("CV_GRAPHENE_MESH_URL");
    dir = env("CV_GRAPHENE_MESH_DIR");
    if (base.empty() || !std::filesystem::exists(dir + "/manifest.json")) {
        if (env("CV_REQUIRE_REFERENCE") == "1") {
            std::cerr << "test_graphene_meshes: CV_REQUIRE_REFERENCE=1 but CV_GRAPHENE_MESH_URL / CV_GRAPHENE_MESH_DIR "
                         "(manifest.json) unset: scripts/test_cpp.sh starts the chunkedgraph double on "
                         "$CV_REFERENCE_DIR/graphene_meshes (scripts/test.sh writes it)"
                      << std::endl;
            return 1;
        }
        std::cout << "test_graphene_meshes: SKIP: CV_GRAPHENE_MESH_URL / CV_GRAPHENE_MESH_DIR unset "
                     "(scripts/test_cpp.sh starts the chunkedgraph double)"
                  << std::endl;
        return 77;
    }
    harness::verbose = false;
    std::cout << "cloudvolume " << cv::version() << ", graphene mesh fixture in " << dir << " through " << base
              << (quick ? " (--quick)" : "") << std::endl;
    try {
        const Json manifest = harness::read_json(dir + "/manifest.json");
        recorded_reads(manifest);
        api_cases(manifest);
    } catch (const cv::Error &e) {
        CHECK(false, "unexpected " << e.code_name() << ": " << e.what());
    } catch (const std::exception &e) {
        CHECK(false, "unexpected exception: " << e.what());
    }
    std::cout << "graphene meshes:";
    for (const auto &kv : counts) std::cout << " " << kv.first << " " << kv.second << ";";
    std::cout << " " << vertices_compared << " vertices equal cloud-volume's bit for bit, in order" << std::endl;
    // The count first, so scripts/test_cpp.sh's summary shows it.
    std::cout << harness::checks << " checks, " << harness::failures << " failures (test_graphene_meshes)" << std::endl;
    return harness::failures == 0 ? 0 : 1;
}
