// Write the layers tests/c/test_capi.c expects (what tests/capi.rs builds with
// tests/support/layers.rs), so the C test can also run outside cargo: under the sanitizers and
// valgrind.
//
// usage: make_capi_layers DIR
//   writes DIR/layer and DIR/holed and prints the four arguments of test_capi:
//   file://DIR/layer file://DIR/holed <missing chunk name> file://DIR/absent-layer
//
// The layer: uint16, 2 channels; mip 0 offset (-3,5,10), size (50,40,20), chunk (16,16,8),
// resolution (4,4,40); mip 1 halves x and y (offset (-2,2,10), size (26,21,20), resolution
// (8,8,40)); voxel (x,y,z,c) of every mip holds (uint16)(x*7 + y*131 + z*1031 + c*50021); the
// chunks alternate raw and raw + gzip (.gz), and the info keeps an unknown member
// ("extra_member"). "holed" is the same without mip 0's first chunk.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <string>

#include "cloudvolume.hpp"

namespace cv = cloudvolume;

namespace {

const char *INFO = R"({
  "type": "image", "data_type": "uint16", "num_channels": 2,
  "scales": [
    {"key": "s0", "size": [50, 40, 20], "voxel_offset": [-3, 5, 10], "resolution": [4, 4, 40],
     "chunk_sizes": [[16, 16, 8]], "encoding": "raw"},
    {"key": "s1", "size": [26, 21, 20], "voxel_offset": [-2, 2, 10], "resolution": [8, 8, 40],
     "chunk_sizes": [[16, 16, 8]], "encoding": "raw"}
  ],
  "extra_member": {"kept": true}
})";

void write_layer(const std::string &url) {
    // Two handles on one layer: one stores plain chunk files, the other .gz files.
    const cv::Volume plain = cv::Volume::create(url, INFO, cv::Options().compress(cv::Compression::none));
    const cv::Volume gz = cv::Volume::open(url, cv::Options().compress(cv::Compression::gzip));
    for (std::uint32_t mip = 0; mip < plain.num_mips(); mip++) {
        const cv::Box b = plain.bounds(mip);
        const cv::Vec3i c = plain.chunk_size(mip);
        std::size_t index = 0;
        for (std::int64_t z = b.lo[2]; z < b.hi[2]; z += c[2])
            for (std::int64_t y = b.lo[1]; y < b.hi[1]; y += c[1])
                for (std::int64_t x = b.lo[0]; x < b.hi[0]; x += c[0], index++) {
                    const cv::Box cell{{x, y, z},
                                       {std::min(x + c[0], b.hi[0]), std::min(y + c[1], b.hi[1]), std::min(z + c[2], b.hi[2])}};
                    cv::Array<std::uint16_t> a(cell, 2);
                    const cv::Vec3i s = cell.shape();
                    for (std::size_t ch = 0; ch < 2; ch++)
                        for (std::int64_t k = 0; k < s[2]; k++)
                            for (std::int64_t j = 0; j < s[1]; j++)
                                for (std::int64_t i = 0; i < s[0]; i++)
                                    a(static_cast<std::size_t>(i), static_cast<std::size_t>(j), static_cast<std::size_t>(k), ch) =
                                        static_cast<std::uint16_t>(static_cast<std::uint64_t>(
                                            (x + i) * 7 + (y + j) * 131 + (z + k) * 1031 + static_cast<std::int64_t>(ch) * 50021));
                    (index % 2 == 0 ? plain : gz).write(mip, a);
                }
    }
}

}  // namespace

int main(int argc, char **argv) {
    if (argc != 2) {
        std::cerr << "usage: " << argv[0] << " DIR" << std::endl;
        return 2;
    }
    const std::filesystem::path dir = std::filesystem::absolute(argv[1]);
    try {
        std::filesystem::remove_all(dir / "layer");
        std::filesystem::remove_all(dir / "holed");
        std::filesystem::create_directories(dir);
        const std::string layer = "file://" + (dir / "layer").string(), holed = "file://" + (dir / "holed").string();
        write_layer(layer);
        write_layer(holed);
        const cv::Box first{{-3, 5, 10}, {13, 21, 18}};
        cv::Volume::open(holed).delete_chunks(0, first);
        std::cout << layer << " " << holed << " -3-13_5-21_10-18 file://" << (dir / "absent-layer").string() << std::endl;
    } catch (const std::exception &e) {
        std::cerr << "make_capi_layers: " << e.what() << std::endl;
        return 1;
    }
    return 0;
}
