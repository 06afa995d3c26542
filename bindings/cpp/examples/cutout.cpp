// Read a box of a uint8 Precomputed layer with the C++ wrapper, in Fortran order and in C order,
// and print a few facts about it.
//
//   ./cutout file://$PWD/data/sample_layer
//
// Exits 0 when both reads agree voxel for voxel, 1 on any error (the message names what failed).
#include <cstdint>
#include <iostream>

#include "cloudvolume.hpp"

int main(int argc, char **argv) {
    namespace cv = cloudvolume;
    if (argc != 2) {
        std::cerr << "usage: " << argv[0] << " LAYER_URL" << std::endl;
        return 2;
    }
    try {
        const cv::Volume vol = cv::Volume::open(argv[1], cv::Options().fill_missing(false));
        const cv::Box all = vol.bounds(0);
        std::cout << argv[1] << ": " << cv::name(vol.data_type()) << " x " << vol.num_channels() << " channel(s), "
                  << vol.num_mips() << " mip(s), bounds " << all.str() << ", library " << cv::version() << "\n";

        // The central half of the volume.
        cv::Box box;
        for (int d = 0; d < 3; d++) {
            const std::int64_t n = all.hi[d] - all.lo[d];
            box.lo[d] = all.lo[d] + n / 4;
            box.hi[d] = box.lo[d] + (n + 1) / 2;
        }
        const cv::Array<std::uint8_t> f = vol.cutout<std::uint8_t>(0, box);                 // x fastest
        const cv::Array<std::uint8_t> c = vol.cutout<std::uint8_t>(0, box, cv::Order::C);  // [x][y][z][c]
        std::uint64_t sum = 0;
        std::size_t differ = 0;
        const cv::Vec3i s = box.shape();
        for (std::size_t ch = 0; ch < f.channels(); ch++)
            for (std::size_t z = 0; z < static_cast<std::size_t>(s[2]); z++)
                for (std::size_t y = 0; y < static_cast<std::size_t>(s[1]); y++)
                    for (std::size_t x = 0; x < static_cast<std::size_t>(s[0]); x++) {
                        sum += f(x, y, z, ch);
                        differ += f(x, y, z, ch) != c(x, y, z, ch);
                    }
        std::cout << "box " << box.str() << ": " << f.size() << " voxels, mean " << static_cast<double>(sum) / static_cast<double>(f.size())
                  << ", Fortran and C order " << (differ == 0 ? "agree" : "DIFFER") << "\n";
        return differ == 0 ? 0 : 1;
    } catch (const cv::Error &e) {
        std::cerr << "cloudvolume error " << e.code_name() << ": " << e.what() << std::endl;
        return 1;
    }
}
