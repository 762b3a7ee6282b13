/* replay_main.c — runs a fuzz target once on each file named on the command
 * line (folders: each regular file in them), without libFuzzer. Linked with
 * fuzz_graph.c or fuzz_expr.c into the replay executables that CI runs on the
 * seed corpora and on every crash input kept in tests/fuzz/regressions/.
 * Exits non-zero when an input cannot be read; a crash aborts the process.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *data;
    long size;
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "cannot read %s\n", path);
        if (f)
            fclose(f);
        return -1;
    }
    data = (uint8_t *)malloc((size_t)size + 1);
    if (data == NULL || fread(data, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "cannot read %s\n", path);
        fclose(f);
        free(data);
        return -1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(data, (size_t)size);
    free(data);
    return 0;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A folder's regular files, in name order, so runs are reproducible. */
static int replay_folder(const char *folder, int *count)
{
    DIR *dir = opendir(folder);
    struct dirent *entry;
    char **paths = NULL;
    size_t n = 0, cap = 0, i;
    int status = 0;
    if (dir == NULL) {
        fprintf(stderr, "cannot open folder %s\n", folder);
        return -1;
    }
    while ((entry = readdir(dir)) != NULL) {
        struct stat st;
        char *path;
        if (entry->d_name[0] == '.')
            continue; /* ., .., .gitkeep */
        path = (char *)malloc(strlen(folder) + strlen(entry->d_name) + 2);
        sprintf(path, "%s/%s", folder, entry->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            free(path);
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            paths = (char **)realloc(paths, cap * sizeof *paths);
        }
        paths[n++] = path;
    }
    closedir(dir);
    if (n > 0)
        qsort(paths, n, sizeof *paths, compare_names);
    for (i = 0; i < n; i++) {
        if (replay_file(paths[i]) != 0)
            status = -1;
        else
            ++*count;
        free(paths[i]);
    }
    free(paths);
    return status;
}

int main(int argc, char **argv)
{
    int i, count = 0, status = 0;
    for (i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "no such file or folder: %s\n", argv[i]);
            status = 1;
        } else if (S_ISDIR(st.st_mode)) {
            if (replay_folder(argv[i], &count) != 0)
                status = 1;
        } else if (replay_file(argv[i]) != 0) {
            status = 1;
        } else {
            count++;
        }
    }
    printf("%s: replayed %d input%s\n", argv[0], count, count == 1 ? "" : "s");
    return status;
}
