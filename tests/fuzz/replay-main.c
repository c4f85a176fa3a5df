/* replay-main.c - run a libFuzzer target over saved inputs without libFuzzer.
 *
 * Usage: replay-reasm FILE|DIR...
 * Every regular file named (directly or inside a named directory, not
 * recursively; names starting with '.' skipped) is read and passed to
 * LLVMFuzzerTestOneInput once. A crash is the target's abort(); otherwise
 * prints "N inputs replayed" and exits 0. Unreadable paths, or no input at
 * all, exit 1.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Read a whole file into a new buffer. */
static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    uint8_t *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096;
            uint8_t *nb = realloc(buf, cap);
            if (!nb)
                break;
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    bool ok = !ferror(f) && buf != NULL && n < cap;
    fclose(f);
    if (!ok) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static int replay_file(const char *path)
{
    size_t len;
    errno = 0;
    uint8_t *data = read_file(path, &len);
    if (!data) {
        fprintf(stderr, "replay: cannot read %s: %s\n", path,
                errno ? strerror(errno) : "read error");
        return -1;
    }
    LLVMFuzzerTestOneInput(data, len);
    free(data);
    return 1;
}

/* Returns the number of inputs replayed, or -1 on an error. */
static long replay_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return replay_file(path);

    DIR *dir = opendir(path);
    if (!dir) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    long count = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        size_t n = strlen(path) + strlen(e->d_name) + 2;
        char *file = malloc(n);
        if (!file) {
            count = -1;
            break;
        }
        snprintf(file, n, "%s/%s", path, e->d_name);
        if (stat(file, &st) == 0 && S_ISREG(st.st_mode)) {
            if (replay_file(file) < 0)
                count = -1;
            else if (count >= 0)
                count++;
        }
        free(file);
    }
    closedir(dir);
    return count;
}

int main(int argc, char **argv)
{
    long total = 0;
    bool failed = false;

    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        long n = replay_path(argv[i]);
        if (n < 0)
            failed = true;
        else
            total += n;
    }
    printf("%ld inputs replayed\n", total);
    if (total == 0) {
        fprintf(stderr, "replay: no inputs found\n");
        return 1;
    }
    return failed ? 1 : 0;
}
