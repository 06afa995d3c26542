// Aligned image + segmentation cutouts through the C++ wrapper (cloudvolume::
// image_and_segmentation_cutout and friends), against the imagery fixture
// (tests/reference/imagery_check.py: ImageryClient's arrays, and the model it computes where
// ImageryClient's zoom and the library's physical alignment part), as tests/imagery.rs drives
// the C ABI:
// - every manifest case on the Precomputed watershed layer (seg "ws"; the graphene cases need the
//   chunkedgraph server and are left to tests/imagery.rs): image and segmentation equal the
//   expected files (ImageryClient's float64-rounded ids compared rounded), the grid equals the
//   model's (and `aligned_grid`, which reads nothing), the default mips ImageryClient chose;
//   every other case is given as center + bbox_size instead of bounds;
// - split_segmentations: one mask per distinct non-zero label, each equal to (seg == id);
//   include_null_root; split_masks in the order of the ids given; root_ids keep only those;
// - segment_color, overlay_rgb (every pixel of a slice equals the blend formula, filled and
//   outlined) and overlay_png (signature, IHDR);
// - bad input: an empty box, an unknown mip, a bad resolution, a uint8 layer as segmentation, a
//   box past a bounded handle's edge, a bad alpha (the library's messages), and the wrapper's own
//   refusals (no box, both forms, mismatched slices, an empty Volume).
//
// usage: test_imagery [REFERENCE_DIR]   (else $CV_REFERENCE_DIR; needs REFERENCE_DIR/imagery/
// manifest.json and REFERENCE_DIR/graphene/ws)
#include <algorithm>
#include <cmath>
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

std::string imagery_dir, ws_url, img_url;

struct Totals {
    int ic = 0, model = 0, centered = 0, masks = 0, float64 = 0;
    std::size_t voxels = 0;
};
Totals totals;

std::vector<std::uint64_t> u64s(const std::vector<unsigned char> &b) {
    std::vector<std::uint64_t> out(b.size() / 8);
    if (!out.empty()) std::memcpy(out.data(), b.data(), out.size() * 8);
    return out;
}

std::vector<std::int64_t> squeezed(const std::vector<std::int64_t> &shape) {
    std::vector<std::int64_t> out;
    for (std::int64_t s : shape)
        if (s != 1) out.push_back(s);
    return out;
}

std::string show(const std::vector<std::int64_t> &v) {
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); i++) s += (i ? ", " : "") + std::to_string(v[i]);
    return s + "]";
}

cv::Options layer_options() { return cv::Options().bounded(false).fill_missing(true); }

/// The AlignedRequest of a manifest request; `centered`: as center + bbox_size.
cv::AlignedRequest request_of(const Json &r, bool centered) {
    cv::AlignedRequest q;
    const cv::Box b{r["bounds"][0].vec3i(), r["bounds"][1].vec3i()};
    if (centered) {
        const cv::Vec3i s = b.shape();
        q.center = cv::Vec3i{b.lo[0] + s[0] / 2, b.lo[1] + s[1] / 2, b.lo[2] + s[2] / 2};
        q.bbox_size = s;
    } else {
        q.bounds = b;
    }
    if (r["resolution"].kind != Json::Null) q.resolution = r["resolution"].vec3d();
    if (r["image_mip"].kind != Json::Null) q.image_mip = static_cast<std::uint32_t>(r["image_mip"].i64());
    if (r["segmentation_mip"].kind != Json::Null)
        q.segmentation_mip = static_cast<std::uint32_t>(r["segmentation_mip"].i64());
    if (r["root_ids"].kind == Json::Array) {
        std::vector<std::uint64_t> ids;
        for (const Json &s : r["root_ids"].items) ids.push_back(std::stoull(s.str()));
        q.root_ids = ids;
    }
    q.scale_to_bounds = r["scale_to_bounds"].kind == Json::Bool && r["scale_to_bounds"].boolean;
    return q;
}

/// Every mask equals (seg == id), the ids are the distinct labels of `seg` (0 only with
/// `with_zero`), ascending (std::map).
void check_masks(const std::string &id, const std::vector<std::uint64_t> &seg,
                 const std::map<std::uint64_t, std::vector<std::uint8_t>> &masks, bool with_zero) {
    std::set<std::uint64_t> want(seg.begin(), seg.end());
    if (!with_zero) want.erase(0);
    std::set<std::uint64_t> got;
    for (const auto &m : masks) got.insert(m.first);
    CHECK(got == want, id << ": " << got.size() << " mask ids, the segmentation has " << want.size() << " labels");
    CHECK(masks.size() >= 2, id << ": only " << masks.size() << " masks prove little");
    for (const auto &m : masks) {
        std::size_t bad = m.second.size() == seg.size() ? 0 : seg.size() + 1, ones = 0;
        for (std::size_t i = 0; i < seg.size() && i < m.second.size(); i++) {
            const std::uint8_t w = seg[i] == m.first ? 1 : 0;
            if (m.second[i] != w) bad++;
            ones += m.second[i] == 1;
        }
        CHECK(bad == 0 && ones > 0, id << ": mask of " << m.first << ": " << bad << " voxels differ, " << ones << " set");
        totals.masks++;
    }
}

void run_case(const cv::Volume &img, const cv::Volume &seg, const Json &c, bool centered) {
    const std::string id = c["id"].str();
    const Json &r = c["request"];
    cv::AlignedRequest req = request_of(r, centered);
    req.split_segmentations = true;
    if (centered) {
        const cv::Box want(cv::Box{r["bounds"][0].vec3i(), r["bounds"][1].vec3i()});
        CHECK(req.box() == want && !req.bounds, id << ": bounds_from_center gives " << req.box().str());
        totals.centered++;
    }
    const cv::AlignedCutout got = cv::image_and_segmentation_cutout(img, seg, req);
    const cv::Vec3i shape = got.grid.shape();
    const std::size_t n = got.grid.voxels();
    CHECK(n == static_cast<std::size_t>(shape[0] * shape[1] * shape[2]) && n > 0, id << ": voxels " << n);
    CHECK(got.segmentation.size() == n && got.image.size() == n && got.channels == 1 &&
              got.image_type == cv::DataType::uint8,
          id << ": array sizes " << got.image.size() << ", " << got.segmentation.size() << " for " << n << " voxels");

    // The grid: as aligned_grid says without reading, ImageryClient's shape (it squeezes axes
    // of size 1), the model's lo/hi/resolution, ImageryClient's default mips.
    const cv::AlignedGrid g = cv::aligned_grid(img, seg, req);
    CHECK(g.lo == got.grid.lo && g.hi == got.grid.hi && g.resolution == got.grid.resolution &&
              g.image_mip == got.grid.image_mip && g.segmentation_mip == got.grid.segmentation_mip,
          id << ": aligned_grid " << g.box().str() << " differs from the cutout's " << got.grid.box().str());
    std::vector<std::int64_t> want_shape;
    for (const Json &s : c["image"]["shape"].items) want_shape.push_back(s.i64());
    CHECK(squeezed({shape[0], shape[1], shape[2]}) == squeezed(want_shape),
          id << ": grid " << got.grid.box().str() << ", expected shape " << show(want_shape));
    if (c["grid"].kind == Json::Object) {
        CHECK(got.grid.lo == c["grid"]["lo"].vec3i(), id << ": grid lo " << got.grid.box().str());
        CHECK(got.grid.hi == c["grid"]["hi"].vec3i(), id << ": grid hi " << got.grid.box().str());
        CHECK(got.grid.resolution == c["grid"]["resolution"].vec3d(),
              id << ": grid resolution " << got.grid.resolution[0] << ", " << got.grid.resolution[1] << ", "
                 << got.grid.resolution[2]);
    }
    if (r["image_mip"].kind == Json::Null && r.has("defaults"))
        CHECK(got.grid.image_mip == static_cast<std::uint32_t>(r["defaults"]["image_mip"].i64()),
              id << ": default image mip " << got.grid.image_mip);
    if (r["image_mip"].kind != Json::Null)
        CHECK(got.grid.image_mip == static_cast<std::uint32_t>(r["image_mip"].i64()), id << ": image mip " << got.grid.image_mip);
    if (r["segmentation_mip"].kind != Json::Null)
        CHECK(got.grid.segmentation_mip == static_cast<std::uint32_t>(r["segmentation_mip"].i64()),
              id << ": segmentation mip " << got.grid.segmentation_mip);

    // The arrays.
    const auto want_img = harness::read_file(imagery_dir + "/" + c["image"]["file"].str());
    CHECK(got.image == std::vector<std::uint8_t>(want_img.begin(), want_img.end()),
          id << ": image differs (" << c["source"].str() << ")");
    CHECK(got.image_as<std::uint8_t>() == got.image, id << ": image_as<uint8_t>");
    const std::vector<std::uint64_t> want = u64s(harness::read_file(imagery_dir + "/" + c["segmentation"]["file"].str()));
    CHECK(std::any_of(want.begin(), want.end(), [](std::uint64_t v) { return v != 0; }),
          id << ": an all-zero segmentation proves little");
    if (c["float64_ids"].kind == Json::Bool && c["float64_ids"].boolean) {
        // ImageryClient's scipy zoom rounded the ids through float64; so do we, here only.
        std::vector<std::uint64_t> rounded(got.segmentation.size());
        for (std::size_t i = 0; i < rounded.size(); i++) {
            const double d = static_cast<double>(got.segmentation[i]);
            rounded[i] = d < 18446744073709551616.0 ? static_cast<std::uint64_t>(d) : 0;
        }
        CHECK(rounded == want, id << ": segmentation differs from ImageryClient's (float64-rounded)");
        CHECK(got.segmentation != want, id << ": ImageryClient's ids were expected to be rounded");
        totals.float64++;
    } else {
        CHECK(got.segmentation == want, id << ": segmentation differs (" << c["source"].str() << ")");
    }
    // One mask per non-zero label, computed against our segmentation.
    check_masks(id, got.segmentation, got.masks, false);
    totals.voxels += n;
    if (c["source"].str() == "model")
        totals.model++;
    else
        totals.ic++;
}

void test_cases(const Json &manifest) {
    const cv::Volume img = cv::Volume::open(img_url, layer_options());
    const cv::Volume seg = cv::Volume::open(ws_url, layer_options());
    int k = 0;
    for (const Json &c : manifest["cases"].items) {
        if (c["seg"].str() != "ws") continue;  // graphene:test needs the chunkedgraph double
        try {
            run_case(img, seg, c, k++ % 2 == 1);
        } catch (const cv::Error &e) {
            CHECK(false, c["id"].str() << ": threw " << e.code_name() << ": " << e.what());
        }
    }
    std::cout << "imagery: " << totals.ic << " ImageryClient cases, " << totals.model << " model cases ("
              << totals.centered << " as center + bbox_size, " << totals.float64 << " with float64 ids), "
              << totals.masks << " split masks, " << totals.voxels << " voxels" << std::endl;
    CHECK(totals.ic >= 2 && totals.model >= 6 && totals.centered >= 3 && totals.float64 >= 1 && totals.masks >= 20,
          "too few cases: " << totals.ic << " ImageryClient, " << totals.model << " model, " << totals.masks << " masks");
}

const Json &find_case(const Json &manifest, const std::string &id) {
    for (const Json &c : manifest["cases"].items)
        if (c["id"].str() == id) return c;
    throw std::runtime_error("no case " + id + " in the imagery manifest");
}

/// root_ids, include_null_root, split_masks' order, split_segmentations on its own.
void test_ids_and_masks(const Json &manifest) {
    const cv::Volume img = cv::Volume::open(img_url, layer_options());
    const cv::Volume seg = cv::Volume::open(ws_url, layer_options());
    const Json &c = find_case(manifest, "same_res_precomputed");
    cv::AlignedRequest req = request_of(c["request"], false);
    const cv::AlignedCutout all = cv::image_and_segmentation_cutout(img, seg, req);
    CHECK(all.masks.empty(), "no masks without split_segmentations: " << all.masks.size());
    const auto labels = cv::detail::distinct_labels(all.segmentation.data(), all.segmentation.size(), false);
    CHECK(labels.size() >= 4, "same_res_precomputed holds " << labels.size() << " labels");
    if (labels.size() < 4) return;

    // root_ids: two labels kept, every other voxel 0; the image unchanged.
    const std::vector<std::uint64_t> keep{labels[1], labels[3]};
    req.root_ids = keep;
    const cv::AlignedCutout some = cv::image_and_segmentation_cutout(img, seg, req);
    std::size_t bad = some.segmentation.size() == all.segmentation.size() ? 0 : 1, kept = 0;
    for (std::size_t i = 0; i < some.segmentation.size() && i < all.segmentation.size(); i++) {
        const std::uint64_t v = all.segmentation[i];
        const std::uint64_t w = (v == keep[0] || v == keep[1]) ? v : 0;
        if (some.segmentation[i] != w) bad++;
        kept += w != 0;
    }
    CHECK(bad == 0 && kept > 0, "root_ids {" << keep[0] << ", " << keep[1] << "}: " << bad << " voxels differ, " << kept << " kept");
    CHECK(some.image == all.image, "root_ids changed the image");
    // An empty list keeps none (not "all": the wrapper passes a non-NULL pointer).
    req.root_ids = std::vector<std::uint64_t>{};
    const cv::AlignedCutout none = cv::image_and_segmentation_cutout(img, seg, req);
    CHECK(none.segmentation.size() == all.segmentation.size() &&
              std::all_of(none.segmentation.begin(), none.segmentation.end(), [](std::uint64_t v) { return v == 0; }),
          "root_ids {} keeps no label");
    CHECK(none.image == all.image, "root_ids {} changed the image");

    // include_null_root: label 0 gets its mask too (the kept-ids segmentation has zeros).
    req.root_ids = keep;
    req.split_segmentations = true;
    req.include_null_root = true;
    const cv::AlignedCutout split = cv::image_and_segmentation_cutout(img, seg, req);
    CHECK(split.masks.size() == 3 && split.masks.count(0) == 1, "include_null_root: " << split.masks.size() << " masks");
    check_masks("include_null_root", split.segmentation, split.masks, true);
    req.include_null_root = false;
    const cv::AlignedCutout split2 = cv::image_and_segmentation_cutout(img, seg, req);
    CHECK(split2.masks.size() == 2 && split2.masks.count(0) == 0, "without include_null_root: " << split2.masks.size() << " masks");

    // split_segmentations on its own, and split_masks in the order of the ids given (one not present).
    check_masks("split_segmentations", all.segmentation, cv::split_segmentations(all.segmentation), false);
    const std::vector<std::uint64_t> order{labels[2], 0, labels[0], 123456789012345ull};
    const auto m = cv::split_masks(all.segmentation, order);
    CHECK(m.size() == order.size(), "split_masks gave " << m.size() << " masks for " << order.size() << " ids");
    for (std::size_t k = 0; k < m.size() && k < order.size(); k++) {
        std::size_t diff = m[k].size() == all.segmentation.size() ? 0 : 1, ones = 0;
        for (std::size_t i = 0; i < m[k].size() && i < all.segmentation.size(); i++) {
            diff += m[k][i] != (all.segmentation[i] == order[k] ? 1 : 0);
            ones += m[k][i];
        }
        CHECK(diff == 0 && (k == 3 ? ones == 0 : ones > 0),
              "split_masks mask " << k << " (id " << order[k] << "): " << diff << " differ, " << ones << " set");
    }
    CHECK(cv::split_masks(all.segmentation, {}).empty() && cv::split_segmentations({}).empty(), "no ids, no masks");
}

// ---- overlay -----------------------------------------------------------------------------

std::array<std::uint8_t, 3> blend(std::uint8_t g, const std::array<std::uint8_t, 3> &c, float alpha) {
    const double a = static_cast<double>(alpha);
    std::array<std::uint8_t, 3> out{};
    for (std::size_t i = 0; i < 3; i++)
        out[i] = static_cast<std::uint8_t>(std::round(g * (1.0 - a) + c[i] * a));
    return out;
}

/// overlay_rgb's pixels against the formula; returns (drawn, plain grey) pixel counts.
std::pair<std::size_t, std::size_t> check_overlay(const std::string &what, const std::vector<std::uint8_t> &grey,
                                                  const std::vector<std::uint64_t> &seg, std::size_t w, std::size_t h,
                                                  float alpha, std::uint32_t outline) {
    const std::vector<std::uint8_t> rgb = cv::overlay_rgb(grey, seg, w, h, alpha, outline);
    CHECK(rgb.size() == 3 * w * h, what << ": " << rgb.size() << " bytes");
    if (rgb.size() != 3 * w * h) return {0, 0};
    std::size_t bad = 0, drawn = 0, plain = 0;
    std::string first;
    const auto r = static_cast<std::int64_t>(outline);
    for (std::size_t y = 0; y < h; y++)
        for (std::size_t x = 0; x < w; x++) {
            const std::size_t i = y * w + x;
            const std::uint64_t s = seg[i];
            bool near = outline == 0;
            for (std::int64_t dy = -r; dy <= r && !near; dy++)
                for (std::int64_t dx = -r; dx <= r && !near; dx++) {
                    if (std::abs(dx) + std::abs(dy) > r) continue;
                    const std::int64_t xx = static_cast<std::int64_t>(x) + dx, yy = static_cast<std::int64_t>(y) + dy;
                    if (xx < 0 || yy < 0 || xx >= static_cast<std::int64_t>(w) || yy >= static_cast<std::int64_t>(h)) continue;
                    near = seg[static_cast<std::size_t>(yy) * w + static_cast<std::size_t>(xx)] != s;
                }
            const bool draw = s != 0 && near;
            const std::array<std::uint8_t, 3> want =
                draw ? blend(grey[i], cv::segment_color(s), alpha) : std::array<std::uint8_t, 3>{grey[i], grey[i], grey[i]};
            if (rgb[3 * i] != want[0] || rgb[3 * i + 1] != want[1] || rgb[3 * i + 2] != want[2]) {
                if (bad++ == 0)
                    first = "pixel (" + std::to_string(x) + ", " + std::to_string(y) + ") of segment " + std::to_string(s);
            }
            (draw ? drawn : plain)++;
        }
    CHECK(bad == 0, what << ": " << bad << " pixels differ from the blend formula, first " << first);
    return {drawn, plain};
}

void test_overlay(const Json &manifest) {
    const Json &c = find_case(manifest, "same_res_precomputed");
    const cv::Volume img = cv::Volume::open(img_url, layer_options());
    const cv::Volume seg = cv::Volume::open(ws_url, layer_options());
    const cv::AlignedCutout cut = cv::image_and_segmentation_cutout(img, seg, request_of(c["request"], false));
    const cv::Vec3i s = cut.grid.shape();
    const auto w = static_cast<std::size_t>(s[0]), h = static_cast<std::size_t>(s[1]);
    const std::int64_t z = 2;
    const std::vector<std::uint8_t> grey = cut.image_slice(z);
    const std::vector<std::uint64_t> labels = cut.segmentation_slice(z);
    // The slices are the expected arrays' slice z (Fortran order: z planes are contiguous).
    const auto want_img = harness::read_file(imagery_dir + "/" + c["image"]["file"].str());
    const auto want_seg = u64s(harness::read_file(imagery_dir + "/" + c["segmentation"]["file"].str()));
    const std::size_t off = static_cast<std::size_t>(z) * w * h;
    CHECK(want_img.size() >= off + w * h && std::equal(grey.begin(), grey.end(), want_img.begin() + static_cast<std::ptrdiff_t>(off)),
          "image_slice(" << z << ") differs from the expected slice");
    CHECK(want_seg.size() >= off + w * h && std::equal(labels.begin(), labels.end(), want_seg.begin() + static_cast<std::ptrdiff_t>(off)),
          "segmentation_slice(" << z << ") differs from the expected slice");

    // segment_color: stable, distinct over the slice's segments.
    std::map<std::uint64_t, std::array<std::uint8_t, 3>> colours;
    for (std::uint64_t v : labels)
        if (v != 0) colours.emplace(v, cv::segment_color(v));
    std::set<std::array<std::uint8_t, 3>> distinct;
    bool stable = true;
    for (const auto &kv : colours) {
        distinct.insert(kv.second);
        stable = stable && cv::segment_color(kv.first) == kv.second;
    }
    CHECK(colours.size() >= 4 && distinct.size() == colours.size() && stable,
          colours.size() << " segments, " << distinct.size() << " colours, stable " << stable);

    const auto filled = check_overlay("overlay_rgb alpha 0.5", grey, labels, w, h, 0.5f, 0);
    CHECK(filled.first > w * h / 2, "filled: only " << filled.first << " pixels drawn");
    // The defaults are alpha 0.5, outline 0.
    CHECK(cv::overlay_rgb(grey, labels, w, h) == cv::overlay_rgb(grey, labels, w, h, 0.5f, 0), "overlay_rgb defaults");
    check_overlay("overlay_rgb alpha 0.6", grey, labels, w, h, 0.6f, 0);
    const auto lined = check_overlay("overlay_rgb outline 2", grey, labels, w, h, 0.75f, 2);
    CHECK(lined.first > 100 && lined.second > filled.second + 100,
          "outline 2: " << lined.first << " drawn, " << lined.second << " grey (filled: " << filled.second << " grey)");
    // A uniform slice with outlines: nothing to outline, all grey.
    const std::vector<std::uint64_t> one(w * h, labels[0] == 0 ? 5 : labels[0]);
    const auto uniform = check_overlay("overlay_rgb one label, outline 1", grey, one, w, h, 1.0f, 1);
    CHECK(uniform.first == 0, "one label outlined: " << uniform.first << " pixels drawn");

    // overlay_png: an 8-bit RGB PNG of w x h.
    const std::vector<std::uint8_t> png = cv::overlay_png(grey, labels, w, h, 0.5f, 0);
    const std::uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    CHECK(png.size() > 33 && std::memcmp(png.data(), sig, 8) == 0, "PNG signature (" << png.size() << " bytes)");
    if (png.size() > 33) {
        auto be32 = [&](std::size_t at) {
            return (std::uint32_t{png[at]} << 24) | (std::uint32_t{png[at + 1]} << 16) | (std::uint32_t{png[at + 2]} << 8) |
                   std::uint32_t{png[at + 3]};
        };
        CHECK(std::memcmp(png.data() + 12, "IHDR", 4) == 0 && be32(16) == w && be32(20) == h && png[24] == 8 && png[25] == 2,
              "IHDR: " << be32(16) << "x" << be32(20) << ", depth " << int(png[24]) << ", colour type " << int(png[25]));
        CHECK(std::memcmp(png.data() + png.size() - 8, "IEND", 4) == 0, "PNG ends with IEND");
    }
    const std::vector<std::uint8_t> png2 = cv::overlay_png(grey, labels, w, h, 0.5f, 2);
    CHECK(png2 != png && png2.size() > 33, "an outlined picture differs from the filled one");
}

// ---- bad input -----------------------------------------------------------------------------

void test_bad_input(const Json &manifest) {
    const cv::Volume img = cv::Volume::open(img_url, cv::Options().fill_missing(true));
    const cv::Volume seg = cv::Volume::open(ws_url);
    cv::AlignedRequest base;
    base.bounds = cv::Box{{100, 80, 20}, {164, 144, 21}};
    // The base request itself works (so each refusal below is the one change's).
    const cv::AlignedCutout ok = cv::image_and_segmentation_cutout(img, seg, base);
    CHECK(ok.grid.voxels() == 64 * 64 && ok.grid.image_mip == 1, "base request: " << ok.grid.box().str());

    cv::AlignedRequest r = base;
    r.bounds = cv::Box{{100, 80, 20}, {100, 144, 21}};
    EXPECT_THROW(cv::InvalidArgument, "empty box", cv::image_and_segmentation_cutout(img, seg, r), CV_ERR_INVALID_ARGUMENT,
                 "empty");
    EXPECT_THROW(cv::InvalidArgument, "empty box (aligned_grid)", cv::aligned_grid(img, seg, r), CV_ERR_INVALID_ARGUMENT,
                 "empty");
    r = base;
    r.image_mip = 9;
    EXPECT_THROW(cv::InvalidArgument, "image mip 9", cv::image_and_segmentation_cutout(img, seg, r), CV_ERR_INVALID_ARGUMENT,
                 "mip 9");
    r = base;
    r.segmentation_mip = 9;
    EXPECT_THROW(cv::InvalidArgument, "segmentation mip 9", cv::image_and_segmentation_cutout(img, seg, r),
                 CV_ERR_INVALID_ARGUMENT, "mip 9");
    r = base;
    r.resolution = cv::Vec3d{-4, 4, 40};
    EXPECT_THROW(cv::InvalidArgument, "negative resolution", cv::image_and_segmentation_cutout(img, seg, r),
                 CV_ERR_INVALID_ARGUMENT, "resolution");
    r = base;
    r.bounds = cv::Box{{400, 300, 20}, {401, 301, 21}};
    r.resolution = cv::Vec3d{4, 4, 40};
    EXPECT_THROW(cv::InvalidArgument, "less than a voxel of the grid", cv::image_and_segmentation_cutout(img, seg, r),
                 CV_ERR_INVALID_ARGUMENT, "less than one voxel");
    r = base;
    r.bounds = cv::Box{{0, 0, 0}, {64, 64, 1}};
    EXPECT_THROW(cv::OutOfBounds, "past a bounded handle's edge", cv::image_and_segmentation_cutout(img, seg, r),
                 CV_ERR_OUT_OF_BOUNDS);
    // A uint8 layer as the segmentation: not a label layer, named.
    EXPECT_THROW(cv::InvalidArgument, "uint8 layer as segmentation", cv::image_and_segmentation_cutout(seg, img, base),
                 CV_ERR_INVALID_ARGUMENT, "uint8", "img");
    EXPECT_THROW(cv::InvalidArgument, "the image layer as both", cv::image_and_segmentation_cutout(img, img, base),
                 CV_ERR_INVALID_ARGUMENT, "uint8", "img");

    // The wrapper's own refusals, before any call.
    r = cv::AlignedRequest{};
    EXPECT_THROW(cv::InvalidArgument, "no box", cv::image_and_segmentation_cutout(img, seg, r), CV_ERR_INVALID_ARGUMENT,
                 "no box");
    r = base;
    r.center = cv::Vec3i{1, 2, 3};
    r.bbox_size = cv::Vec3i{4, 4, 1};
    EXPECT_THROW(cv::InvalidArgument, "bounds and center", cv::aligned_grid(img, seg, r), CV_ERR_INVALID_ARGUMENT, "not both");
    r.bounds.reset();
    r.bbox_size.reset();
    EXPECT_THROW(cv::InvalidArgument, "center without bbox_size", r.box(), CV_ERR_INVALID_ARGUMENT, "bbox_size");
    r = base;
    r.image_mip = 3000000000u;
    EXPECT_THROW(cv::InvalidArgument, "a mip past int32", cv::aligned_grid(img, seg, r), CV_ERR_INVALID_ARGUMENT,
                 "3000000000");
    cv::Volume gone = cv::Volume::open(img_url);
    gone.close();
    EXPECT_THROW(cv::InvalidArgument, "an empty Volume", cv::image_and_segmentation_cutout(gone, seg, base),
                 CV_ERR_INVALID_ARGUMENT, "empty Volume");
    EXPECT_THROW(cv::TypeMismatch, "image_as<uint16_t> of a uint8 image", ok.image_as<std::uint16_t>(),
                 CV_ERR_INVALID_ARGUMENT, "uint16", "uint8");
    EXPECT_THROW(cv::InvalidArgument, "a slice past the grid", ok.segmentation_slice(1), CV_ERR_INVALID_ARGUMENT, "z 1");

    // Overlays: mismatched slices (the wrapper), a bad alpha (the library).
    const std::vector<std::uint8_t> grey(12, 7);
    const std::vector<std::uint64_t> labels{1, 2, 2, 0, 1, 2, 2, 0, 1, 2, 2, 0};
    EXPECT_THROW(cv::InvalidArgument, "overlay_rgb of a 4x4 picture from 12 pixels", cv::overlay_rgb(grey, labels, 4, 4),
                 CV_ERR_INVALID_ARGUMENT, "4x4", "16");
    EXPECT_THROW(cv::InvalidArgument, "overlay_png with a short segmentation",
                 cv::overlay_png(grey, std::vector<std::uint64_t>(11), 4, 3), CV_ERR_INVALID_ARGUMENT, "11");
    EXPECT_THROW(cv::InvalidArgument, "overlay_rgb alpha 2", cv::overlay_rgb(grey, labels, 4, 3, 2.0f), CV_ERR_INVALID_ARGUMENT,
                 "alpha");
    EXPECT_THROW(cv::InvalidArgument, "overlay_png alpha -1", cv::overlay_png(grey, labels, 4, 3, -1.0f),
                 CV_ERR_INVALID_ARGUMENT, "alpha");
    (void)manifest;
}

}  // namespace

int main(int argc, char **argv) {
    std::string dir = argc > 1 ? argv[1] : "";
    if (dir.empty()) {
        const char *e = std::getenv("CV_REFERENCE_DIR");
        dir = e ? e : "";
    }
    imagery_dir = dir + "/imagery";
    if (dir.empty() || !std::filesystem::exists(imagery_dir + "/manifest.json") ||
        !std::filesystem::exists(dir + "/graphene/ws/info"))
        return harness::missing_reference("test_imagery", dir.empty() ? "$CV_REFERENCE_DIR" : imagery_dir);
    img_url = "file://" + imagery_dir + "/img";
    ws_url = "file://" + dir + "/graphene/ws";
    std::cout << "cloudvolume " << cv::version() << ", imagery fixture in " << imagery_dir << std::endl;
    try {
        const Json manifest = harness::read_json(imagery_dir + "/manifest.json");
        test_cases(manifest);
        test_ids_and_masks(manifest);
        test_overlay(manifest);
        test_bad_input(manifest);
    } catch (const cv::Error &e) {
        CHECK(false, "unexpected " << e.code_name() << ": " << e.what());
    } catch (const std::exception &e) {
        CHECK(false, "unexpected exception: " << e.what());
    }
    // The count first, so scripts/test_cpp.sh's summary shows it (it knows only the older suites' names).
    std::cout << harness::checks << " checks, " << harness::failures << " failures (test_imagery)" << std::endl;
    return harness::failures == 0 ? 0 : 1;
}
