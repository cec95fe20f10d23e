/* The trust policy for plugin files (ownership, modes, optional SHA-256
 * pins, checked on open descriptors) and the access list for clients. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <nettle/sha2.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int ph_policy_check_dir(const char *dir, char *err, size_t err_size)
{
        struct stat st, root;
        int fd, up, depth;

        if (stat("/", &root) < 0)
                return -errno;
        fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        for (depth = 0; depth < 256; depth++) {
                if (fstat(fd, &st) < 0) {
                        int r = -errno;
                        close(fd);
                        return r;
                }
                if (!owner_trusted(st.st_uid) ||
                    ((st.st_mode & (S_IWGRP | S_IWOTH)) && !((st.st_mode & S_ISVTX) && st.st_uid == 0))) {
                        snprintf(err, err_size, "%s directory at depth %d above %s is %s",
                                 depth ? "a" : "the plugin", depth, dir,
                                 !owner_trusted(st.st_uid) ? "owned by someone else"
                                                           : "writable by group or others");
                        close(fd);
                        return -EPERM;
                }
                if (st.st_dev == root.st_dev && st.st_ino == root.st_ino)
                        break;
                up = openat(fd, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                close(fd);
                if (up < 0)
                        return -errno;
                fd = up;
        }
        close(fd);
        return 0;
}

/* ---- digests ---- */

struct ph_digests {
        atomic_int refs;
        unsigned char (*sums)[SHA256_DIGEST_SIZE];
        size_t n, cap;
};

static int hex_value(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

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
                int i;

                lineno++;
                if (line[0] == '#' || line[0] == '\n')
                        continue;
                for (i = 0; i < SHA256_DIGEST_SIZE; i++) {
                        int hi = hex_value(line[2 * i]), lo = hi < 0 ? -1 : hex_value(line[2 * i + 1]);
                        if (hi < 0 || lo < 0)
                                break;
                        sum[i] = (unsigned char)(hi << 4 | lo);
                }
                if (i < SHA256_DIGEST_SIZE || (line[64] != ' ' && line[64] != '\t')) {
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
        for (int i = 0; i < SHA256_DIGEST_SIZE; i++)
                sprintf(hex + 2 * i, "%02x", sum[i]);
        for (size_t i = 0; i < d->n; i++)
                if (memcmp(d->sums[i], sum, sizeof(sum)) == 0)
                        return 1;
        return 0;
}
