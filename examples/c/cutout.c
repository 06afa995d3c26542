/* Read a box of a Precomputed layer into a buffer and print a few facts about it.
 *
 *   cc -O2 -Iinclude examples/c/cutout.c target/release/libcloudvolume.a -lpthread -ldl -lm
 *   ./a.out file://$PWD/data/sample_layer
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "cloudvolume.h"

int main(int argc, char **argv) {
  const char *url = argc > 1 ? argv[1] : "file://data/sample_layer";
  cv_volume *vol = NULL;
  if (cv_open(url, "{\"fill_missing\": false}", &vol) != CV_OK) {
    fprintf(stderr, "open failed: %s\n", cv_last_error());
    return 1;
  }
  int64_t lo[3], hi[3];
  int32_t dtype = 0;
  uint32_t channels = 0;
  cv_bounds(vol, 0, lo, hi);
  cv_data_type(vol, &dtype);
  cv_num_channels(vol, &channels);
  printf("%s: %s x %u channel(s), bounds [%" PRId64 ",%" PRId64 ",%" PRId64 "]..[%" PRId64 ",%" PRId64
         ",%" PRId64 "]\n",
         url, cv_dtype_name(dtype), channels, lo[0], lo[1], lo[2], hi[0], hi[1], hi[2]);

  /* The whole volume at mip 0, in Fortran order (x fastest, then y, z, channel). */
  size_t len = 0;
  if (cv_cutout_len(vol, lo, hi, &len) != CV_OK) {
    fprintf(stderr, "%s\n", cv_last_error());
    cv_free(vol);
    return 1;
  }
  void *buf = malloc(len);
  cv_status st = cv_cutout_into(vol, 0, lo, hi, buf, len);
  if (st != CV_OK) {
    fprintf(stderr, "cutout failed (status %d): %s\n", st, cv_last_error());
  } else if (dtype == CV_DTYPE_UINT8) {
    uint64_t sum = 0;
    for (size_t i = 0; i < len; i++) sum += ((const uint8_t *)buf)[i];
    printf("read %zu bytes, mean value %.2f\n", len, (double)sum / (double)len);
  } else {
    printf("read %zu bytes\n", len);
  }
  free(buf);
  cv_free(vol);
  return st == CV_OK ? 0 : 1;
}
