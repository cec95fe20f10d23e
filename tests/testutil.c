/* Shared helpers of the Check suites. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static const char *tu_env_path(const char *var, const char *name)
{
        static char buf[4096];
        const char *dir = getenv(var);

        ck_assert_msg(dir != NULL, "%s is not set (run through make check)", var);
        snprintf(buf, sizeof(buf), "%s/%s", dir, name);
        return buf;
}

const char *tu_fixture(const char *name)
{
        return tu_env_path("PH_FIXTURES", name);
}

const char *tu_example(const char *name)
{
        return tu_env_path("PH_EXAMPLES", name);
}

char *tu_tmpdir(void)
{
        char *dir = strdup("/tmp/plughost-test-XXXXXX");

        ck_assert_ptr_nonnull(dir);
        ck_assert_ptr_nonnull(mkdtemp(dir));
        return dir;
}

static int tu_rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)flag;
        (void)ftw;
        return remove(path);
}

void tu_tmpdir_free(char *dir)
{
        if (!dir)
                return;
        nftw(dir, tu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        free(dir);
}

char *tu_path(const char *dir, const char *name)
{
        char *p;

        ck_assert_int_ge(asprintf(&p, "%s/%s", dir, name), 0);
        return p;
}

unsigned char *tu_read_file(const char *path, size_t *ret_size)
{
        struct stat st;
        unsigned char *buf;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
        ck_assert_int_eq(fstat(fd, &st), 0);
        buf = malloc((size_t)st.st_size + 1);
        ck_assert_ptr_nonnull(buf);
        ck_assert_int_eq(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
        close(fd);
        *ret_size = (size_t)st.st_size;
        return buf;
}

void tu_write_file(const char *path, const void *data, size_t size)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

        ck_assert_msg(fd >= 0, "create %s: %s", path, strerror(errno));
        ck_assert_int_eq(write(fd, data, size), (ssize_t)size);
        close(fd);
}

void tu_copy_file(const char *from, const char *to)
{
        size_t size;
        unsigned char *data = tu_read_file(from, &size);

        tu_write_file(to, data, size);
        free(data);
}

int tu_run(char *const argv[], char **ret_stdout)
{
        int pipefd[2], status;
        size_t len = 0, cap = 4096;
        char *out = malloc(cap);
        pid_t pid;
        ssize_t n;

        ck_assert_ptr_nonnull(out);
        ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                dup2(pipefd[1], STDOUT_FILENO);
                execv(argv[0], argv);
                _exit(127);
        }
        close(pipefd[1]);
        while ((n = read(pipefd[0], out + len, cap - len - 1)) > 0) {
                len += (size_t)n;
                if (cap - len < 2) {
                        cap *= 2;
                        out = realloc(out, cap);
                        ck_assert_ptr_nonnull(out);
                }
        }
        close(pipefd[0]);
        out[len] = '\0';
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        if (ret_stdout)
                *ret_stdout = out;
        else
                free(out);
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int tu_run_suite(Suite *s)
{
        SRunner *sr = srunner_create(s);
        int failed;

        srunner_set_fork_status(sr, CK_FORK);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed;
}
