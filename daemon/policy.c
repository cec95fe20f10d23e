/* The trust policy for plugin files (ownership, modes, optional SHA-256
 * pins, checked on open descriptors) and the access list for clients. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <nettle/sha2.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hex.h"
#include "policy.h"
#include "vec.h"

/* ---- clients ---- */

static int parse_id(const char *word, unsigned long *ret)
{
        char *end;

        if (word[0] < '0' || word[0] > '9')
                return -EINVAL;
        errno = 0;
        *ret = strtoul(word, &end, 10);
        return errno || *end ? -EINVAL : 0;
}

static int acl_add(ph_acl *acl, const char *value, bool groups, char *err, size_t err_size)
{
        char *copy = strdup(value), *save = NULL, *word;
        int r = 0;

        if (!copy)
                return -ENOMEM;
        acl->set = true;
        for (word = strtok_r(copy, " \t,", &save); word && r == 0; word = strtok_r(NULL, " \t,", &save)) {
                unsigned long id;

                if (parse_id(word, &id) < 0) {
                        struct passwd *pw = groups ? NULL : getpwnam(word);
                        struct group *gr = groups ? getgrnam(word) : NULL;

                        if (!pw && !gr) {
                                snprintf(err, err_size, "no %s named '%.64s'", groups ? "group" : "user", word);
                                r = -EINVAL;
                                break;
                        }
                        id = groups ? gr->gr_gid : pw->pw_uid;
                }
                if (groups) {
                        gid_t g = (gid_t)id;
                        r = ph__vec_push((void **)&acl->gids, &acl->n_gids, &acl->cap_gids, sizeof(g), &g);
                } else {
                        uid_t u = (uid_t)id;
                        r = ph__vec_push((void **)&acl->uids, &acl->n_uids, &acl->cap_uids, sizeof(u), &u);
                }
        }
        free(copy);
        return r;
}

int ph_acl_add_users(ph_acl *acl, const char *value, char *err, size_t err_size)
{
        return acl_add(acl, value, false, err, err_size);
}

int ph_acl_add_groups(ph_acl *acl, const char *value, char *err, size_t err_size)
{
        return acl_add(acl, value, true, err, err_size);
}

void ph_acl_clear(ph_acl *acl)
{
        free(acl->uids);
        free(acl->gids);
        memset(acl, 0, sizeof(*acl));
}

bool ph_acl_allows(const ph_acl *acl, uid_t uid, const gid_t *groups, size_t n_groups)
{
        if (uid == 0 || uid == geteuid())
                return true;
        if (!acl)
                return false;
        for (size_t i = 0; i < acl->n_uids; i++)
                if (acl->uids[i] == uid)
                        return true;
        for (size_t i = 0; i < acl->n_gids; i++)
                for (size_t j = 0; j < n_groups; j++)
                        if (acl->gids[i] == groups[j])
                                return true;
        return false;
}

/* ---- files ---- */

static bool owner_trusted(uid_t uid)
{
        return uid == 0 || uid == geteuid();
}

int ph_policy_check_file(const struct stat *st, char *err, size_t err_size)
{
        if (!S_ISREG(st->st_mode))
                snprintf(err, err_size, "not a regular file");
        else if (st->st_mode & (S_ISUID | S_ISGID))
                snprintf(err, err_size, "has the set-uid or set-gid bit");
        else if (!owner_trusted(st->st_uid))
                snprintf(err, err_size, "owned by uid %u, not root or the daemon's user",
                         (unsigned)st->st_uid);
        else if (st->st_mode & (S_IWGRP | S_IWOTH))
                snprintf(err, err_size, "writable by %s (mode %04o)",
                         st->st_mode & S_IWOTH ? "others" : "its group", st->st_mode & 07777);
        else
                return 0;
        return -EPERM;
}

static bool dir_trusted(const struct stat *st)
{
        return owner_trusted(st->st_uid) &&
               (!(st->st_mode & (S_IWGRP | S_IWOTH)) || ((st->st_mode & S_ISVTX) && st->st_uid == 0));
}

/* "KIND AT WHAT", and the path it was on the way to when that is
 * another. */
static int walk_refuse(char *err, size_t err_size, const char *path, const char *kind, const char *at,
                       const char *what)
{
        if (strcmp(path, at) == 0)
                snprintf(err, err_size, "%s %s %s", kind, at, what);
        else
                snprintf(err, err_size, "%s %s %s (on the way to %s)", kind, at, what, path);
        return -EPERM;
}

/* The walk keeps what is left to resolve in rest, a link's target put in
 * front of what followed the link, as the kernel does, but a component at
 * a time with O_NOFOLLOW, checking each directory before going into it. */
int ph_policy_open_dir(const char *path, int *ret_fd, char *err, size_t err_size)
{
        char rest[2 * PATH_MAX], target[PATH_MAX], comp[NAME_MAX + 1], at[PATH_MAX];
        struct stat st;
        int fd, next, links = 0, r;
        size_t len;

        if (path[0] != '/')
                return -EINVAL;
        if (strlen(path) >= sizeof(rest))
                return -ENAMETOOLONG;
        strcpy(rest, path);
        snprintf(at, sizeof(at), "/");
        fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        for (;;) {
                char *p = rest, *slash;

                if (fstat(fd, &st) < 0)
                        goto fail_errno;
                if (!dir_trusted(&st)) {
                        r = walk_refuse(err, err_size, path, "directory", at,
                                        !owner_trusted(st.st_uid) ? "is owned by someone else"
                                                                  : "is writable by group or others");
                        goto fail;
                }
                while (*p == '/')
                        p++;
                if (!*p)
                        break;
                slash = strchr(p, '/');
                len = slash ? (size_t)(slash - p) : strlen(p);
                if (len > NAME_MAX) {
                        r = -ENAMETOOLONG;
                        goto fail;
                }
                memcpy(comp, p, len);
                comp[len] = '\0';
                memmove(rest, p + len, strlen(p + len) + 1);
                if (strcmp(comp, ".") == 0)
                        continue;
                next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (next >= 0) {
                        close(fd);
                        fd = next;
                        snprintf(at + strlen(at), sizeof(at) - strlen(at), "%s%s",
                                 at[strlen(at) - 1] == '/' ? "" : "/", comp);
                        continue;
                }
                if ((errno != ELOOP && errno != ENOTDIR) || fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                    !S_ISLNK(st.st_mode)) {
                        if (errno == ELOOP)
                                errno = ENOTDIR;
                        goto fail_errno;
                }
                /* A symlink in a directory that passed: only root or we
                 * could have made it, unless the directory is sticky
                 * (/tmp), where its owner says who did. */
                if (!owner_trusted(st.st_uid)) {
                        r = walk_refuse(err, err_size, path, "symbolic link", comp,
                                        "is owned by someone else");
                        goto fail;
                }
                if (++links > 40) {
                        r = -ELOOP;
                        goto fail;
                }
                ssize_t n = readlinkat(fd, comp, target, sizeof(target) - 1);
                if (n < 0)
                        goto fail_errno;
                target[n] = '\0';
                if ((size_t)n + strlen(rest) + 2 > sizeof(rest)) {
                        r = -ENAMETOOLONG;
                        goto fail;
                }
                memmove(rest + n + 1, rest, strlen(rest) + 1);
                memcpy(rest, target, (size_t)n);
                rest[n] = '/';
                if (target[0] == '/') {
                        next = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                        if (next < 0)
                                goto fail_errno;
                        close(fd);
                        fd = next;
                        snprintf(at, sizeof(at), "/");
                }
        }
        *ret_fd = fd;
        return 0;
fail_errno:
        r = -errno;
fail:
        close(fd);
        return r;
}

/* ---- digests ---- */

struct ph_digests {
        atomic_int refs;
        unsigned char (*sums)[SHA256_DIGEST_SIZE];
        size_t n, cap;
};

static void digests_free(ph_digests *d)
{
        free(d->sums);
        free(d);
}

int ph_digests_load(const char *path, ph_digests **ret, char *err, size_t err_size)
{
        ph_digests *d = calloc(1, sizeof(*d));
        FILE *f = fopen(path, "re");
        char line[4096];
        int lineno = 0;

        if (!d || !f) {
                int r = f ? -ENOMEM : -errno;

                snprintf(err, err_size, "%s: %s", path, strerror(-r));
                if (f)
                        fclose(f);
                free(d);
                return r;
        }
        while (fgets(line, sizeof(line), f)) {
                unsigned char sum[SHA256_DIGEST_SIZE];

                lineno++;
                if (line[0] == '#' || line[0] == '\n')
                        continue;
                if (ph_hex_decode(line, SHA256_DIGEST_SIZE, sum) < 0 ||
                    (line[64] != ' ' && line[64] != '\t')) {
                        snprintf(err, err_size, "%s:%d: not a sha256sum line", path, lineno);
                        fclose(f);
                        digests_free(d);
                        return -EINVAL;
                }
                if (ph__vec_push((void **)&d->sums, &d->n, &d->cap, sizeof(sum), sum) < 0) {
                        fclose(f);
                        digests_free(d);
                        return -ENOMEM;
                }
        }
        fclose(f);
        atomic_init(&d->refs, 1);
        *ret = d;
        return 0;
}

ph_digests *ph_digests_ref(ph_digests *d)
{
        if (d)
                atomic_fetch_add(&d->refs, 1);
        return d;
}

void ph_digests_unref(ph_digests *d)
{
        if (d && atomic_fetch_sub(&d->refs, 1) == 1)
                digests_free(d);
}

int ph_digests_match(const ph_digests *d, int fd, char hex[65])
{
        unsigned char buf[65536], sum[SHA256_DIGEST_SIZE];
        struct sha256_ctx ctx;
        off_t off = 0;
        ssize_t n;

        sha256_init(&ctx);
        while ((n = pread(fd, buf, sizeof(buf), off)) > 0) {
                sha256_update(&ctx, (size_t)n, buf);
                off += n;
        }
        if (n < 0)
                return -errno;
        sha256_digest(&ctx, sizeof(sum), sum);
        ph_hex_encode(sum, SHA256_DIGEST_SIZE, hex);
        for (size_t i = 0; i < d->n; i++)
                if (memcmp(d->sums[i], sum, sizeof(sum)) == 0)
                        return 1;
        return 0;
}
