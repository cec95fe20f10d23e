/* The trust policy: which plugin files plughostd loads, and which clients
 * may change anything. */
#ifndef PH_POLICY_H
#define PH_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Users and groups allowed to use the changing methods. */
typedef struct ph_acl {
        uid_t *uids;
        size_t n_uids, cap_uids;
        gid_t *gids;
        size_t n_gids, cap_gids;
        bool set;                       /* configured (else: the default) */
} ph_acl;

/* Adds the space-separated user (or group) names or numbers in value.
 * -EINVAL (with the bad word in err) for a name that does not exist. */
int ph_acl_add_users(ph_acl *acl, const char *value, char *err, size_t err_size);
int ph_acl_add_groups(ph_acl *acl, const char *value, char *err, size_t err_size);
void ph_acl_clear(ph_acl *acl);

/* Whether a peer may change things: root and the daemon's own user always
 * may; then acl (if set) by uid or by any of its groups. */
bool ph_acl_allows(const ph_acl *acl, uid_t uid, const gid_t *groups, size_t n_groups);

/* SHA-256 pins from a file in sha256sum format. */
typedef struct ph_digests ph_digests;

int ph_digests_load(const char *path, ph_digests **ret, char *err, size_t err_size);
/* Reference counted: a load on a worker may outlive a reload. */
ph_digests *ph_digests_ref(ph_digests *d);
void ph_digests_unref(ph_digests *d);
/* Whether the bytes of fd (from offset 0, to EOF) hash to a listed digest;
 * -errno on a read error. */
int ph_digests_match(const ph_digests *d, int fd, char hex[65]);

/* Checks a plugin file as it was opened (O_NOFOLLOW; st from fstat):
 * regular, no set-uid/set-gid, owned by root or us, not writable by group
 * or others. Returns 0, or -EPERM with the reason in err. */
int ph_policy_check_file(const struct stat *st, char *err, size_t err_size);

/* Opens the directory at path (absolute) by walking it from "/" a
 * component at a time with O_NOFOLLOW, so nothing is resolved that was not
 * checked: every directory on the way must be owned by root or us and not
 * writable by group or others (unless sticky and root's, as /tmp). A
 * symlink on the way (the path itself, or /lib on a merged-/usr system) is
 * followed only if it is owned by root or us and lies in a directory that
 * passed; its target is walked the same way. Returns 0 with the
 * descriptor in *ret_fd (O_RDONLY | O_DIRECTORY), -EPERM with the reason
 * in err, or -errno (ENOENT, ENOTDIR, ELOOP...). */
int ph_policy_open_dir(const char *path, int *ret_fd, char *err, size_t err_size);

#endif
