/* Proof that the sanitizers of a CLOUDVOLUME_SANITIZE build are active here: with no argument
 * this leaks a block (LeakSanitizer must report it), with "ub" it overflows a signed int
 * (UndefinedBehaviorSanitizer must report it). ctest passes when the report appears. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *volatile kept;

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "ub") == 0) {
        volatile int x = INT_MAX;
        int y = x + argc; /* signed overflow */
        printf("%d\n", y);
        return 0;
    }
    kept = malloc(64);
    kept[0] = 1;
    kept = NULL; /* the only pointer is gone: a definite leak */
    return 0;
}
