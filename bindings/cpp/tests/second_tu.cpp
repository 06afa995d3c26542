// A second translation unit of test_wrapper including cloudvolume.hpp: linking both proves the
// header defines nothing twice (every non-template function is inline).
#include <cstdint>
#include <string>

#include "cloudvolume.hpp"

std::string second_tu_summary(const cloudvolume::Volume &vol) {
    const cloudvolume::Box b = vol.bounds(0);
    const cloudvolume::Array<std::uint16_t> a =
        vol.cutout<std::uint16_t>(0, cloudvolume::Box{b.lo, {b.lo[0] + 1, b.lo[1] + 1, b.lo[2] + 1}}, cloudvolume::Order::C);
    return cloudvolume::version() + " " + cloudvolume::name(vol.data_type()) + " " + std::to_string(a(0, 0, 0, 1)) + " " +
           cloudvolume::Options().bounded(false).to_json() + " " + cloudvolume::status_name(CV_ERR_IO);
}
