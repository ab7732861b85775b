/* Private key files: the protobuf PrivateKey encoding, mode 0600, replaced atomically.
 * See cp2p_privkey_save() / cp2p_privkey_load() in include/cp2p/keys.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include <cp2p/keys.h>

#include "util/limits.h"
#include "util/log_internal.h"

#define LOG_MODULE "keys"
/* Attempts at a fresh temporary name before giving up (each collision has odds of 2^-64). */
#define TMP_NAME_TRIES 8
/* ".tmp-" + 16 hex digits + NUL */
#define TMP_SUFFIX_MAX 22

static int write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* fsync the directory holding `path`, so that the rename itself is durable. */
static int fsync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (slash == NULL) {
        dir[0] = '.';
        dir[1] = '\0';
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        if (n >= sizeof(dir)) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    int rc = fsync(fd);
    /* Some file systems cannot fsync a directory; the data itself is already synced. */
    if (rc != 0 && (errno == EINVAL || errno == ENOTSUP)) {
        rc = 0;
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/* Create a new file next to `path` with mode 0600 and O_EXCL, under a random name written to
 * `tmp` (of size `cap`). Returns the descriptor or -1 with errno set. */
static int create_temp(const char *path, char *tmp, size_t cap)
{
    for (int i = 0; i < TMP_NAME_TRIES; i++) {
        uint8_t rnd[8];
        randombytes_buf(rnd, sizeof(rnd));
        int n = snprintf(tmp, cap, "%s.tmp-%02x%02x%02x%02x%02x%02x%02x%02x", path, rnd[0], rnd[1],
                         rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
        if (n < 0 || (size_t)n >= cap) {
            errno = ENAMETOOLONG;
            return -1;
        }
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd >= 0) {
            /* The umask can only remove bits, but make the mode exact anyway. */
            if (fchmod(fd, 0600) != 0) {
                int saved = errno;
                close(fd);
                unlink(tmp);
                errno = saved;
                return -1;
            }
            return fd;
        }
        if (errno != EEXIST) {
            return -1;
        }
    }
    errno = EEXIST;
    return -1;
}

int cp2p_privkey_save(const cp2p_privkey *priv, const char *path)
{
    if (priv == NULL || path == NULL || path[0] == '\0') {
        return CP2P_EINVAL;
    }
    size_t plen = strlen(path);
    if (plen > SIZE_MAX - TMP_SUFFIX_MAX) {
        return CP2P_EINVAL;
    }
    size_t cap = plen + TMP_SUFFIX_MAX;
    char *tmp = cp2p_malloc(cap);
    if (tmp == NULL) {
        return CP2P_ENOMEM;
    }
    cp2p_buf enc;
    cp2p_buf_init(&enc, CP2P_KEY_MARSHAL_MAX);
    const char *op = "marshal";
    int fd = -1;
    bool created = false;
    int rc = cp2p_privkey_marshal(priv, &enc);
    if (rc != 0) {
        goto fail;
    }
    rc = CP2P_EIO;
    op = "create";
    if ((fd = create_temp(path, tmp, cap)) < 0) {
        goto fail;
    }
    created = true;
    op = "write";
    if (write_all(fd, enc.ptr, enc.len) != 0) {
        goto fail;
    }
    op = "fsync";
    if (fsync(fd) != 0) {
        goto fail;
    }
    op = "close";
    int crc = close(fd);
    fd = -1;
    if (crc != 0) {
        goto fail;
    }
    op = "rename";
    if (rename(tmp, path) != 0) {
        goto fail;
    }
    created = false;
    op = "fsync-dir";
    if (fsync_parent_dir(path) != 0) {
        goto fail;
    }
    cp2p_buf_fini_wipe(&enc);
    cp2p_free(tmp);
    return 0;
fail:
    if (rc == CP2P_EIO) {
        int saved = errno;
        CP2P_LOG(CP2P_LOG_WARN, LOG_MODULE, 0, "keys.save_failed path=%s op=%s errno=%d (%s)", path,
                 op, saved, strerror(saved));
    }
    if (fd >= 0) {
        close(fd);
    }
    if (created) {
        unlink(tmp);
    }
    cp2p_buf_fini_wipe(&enc);
    cp2p_free(tmp);
    return rc;
}

/* Read the whole of `fd` (a regular file) into buf[0..cap). Returns bytes read, or -1 (errno
 * set), or cap + 1 if the file holds more than cap bytes. */
static ssize_t read_bounded(int fd, uint8_t *buf, size_t cap)
{
    size_t len = 0;
    for (;;) {
        uint8_t *dst = buf + len;
        size_t room = cap - len;
        uint8_t probe;
        if (room == 0) {
            /* Full: one more byte means the file grew past the limit since fstat. */
            dst = &probe;
            room = 1;
        }
        ssize_t n = read(fd, dst, room);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return -1;
        }
        if (n == 0) {
            return (ssize_t)len;
        }
        if (dst == &probe) {
            return (ssize_t)cap + 1;
        }
        len += (size_t)n;
    }
}

int cp2p_privkey_load(const char *path, cp2p_privkey **out)
{
    if (path == NULL || path[0] == '\0' || out == NULL) {
        return CP2P_EINVAL;
    }
    /* O_NONBLOCK: opening a FIFO must not hang; it is refused below as not a regular file. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR) {
            return CP2P_ENOENT;
        }
        CP2P_LOG(CP2P_LOG_WARN, LOG_MODULE, 0, "keys.load_failed path=%s op=open errno=%d (%s)",
                 path, e, strerror(e));
        return CP2P_EIO;
    }
    uint8_t buf[CP2P_KEY_FILE_MAX];
    ssize_t n = 0;
    int rc;
    struct stat st;
    /* Check the file we opened, not the name, so nothing can be swapped in between. */
    if (fstat(fd, &st) != 0) {
        int e = errno;
        CP2P_LOG(CP2P_LOG_WARN, LOG_MODULE, 0, "keys.load_failed path=%s op=fstat errno=%d (%s)",
                 path, e, strerror(e));
        rc = CP2P_EIO;
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        CP2P_LOG(CP2P_LOG_WARN, LOG_MODULE, 0, "keys.not_regular path=%s: not a regular file",
                 path);
        rc = CP2P_EINVAL;
        goto done;
    }
    if ((st.st_mode & 077) != 0) {
        CP2P_LOG(CP2P_LOG_WARN, LOG_MODULE, 0,
                 "keys.file_mode path=%s mode=%04o: private key file is accessible by group or "
                 "others; refusing to use it (fix with: chmod 600 %s)",
                 path, (unsigned)(st.st_mode & 07777), path);
        rc = CP2P_EPERM;
        goto done;
    }
    if (st.st_size < 0 || (uintmax_t)st.st_size > CP2P_KEY_FILE_MAX) {
        rc = CP2P_ELIMIT;
        goto done;
    }
    n = read_bounded(fd, buf, sizeof(buf));
    if (n < 0) {
        int e = errno;
        n = 0;
        CP2P_LOG(CP2P_LOG_WARN, LOG_MODULE, 0, "keys.load_failed path=%s op=read errno=%d (%s)",
                 path, e, strerror(e));
        rc = CP2P_EIO;
        goto done;
    }
    if ((size_t)n > sizeof(buf)) {
        n = (ssize_t)sizeof(buf);
        rc = CP2P_ELIMIT;
        goto done;
    }
    rc = cp2p_privkey_unmarshal(buf, (size_t)n, out);
done:
    sodium_memzero(buf, (size_t)n);
    close(fd);
    return rc;
}
