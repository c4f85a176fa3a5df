/* vdp-unix.c - AF_UNIX stream socket helpers (non-blocking, close-on-exec). */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vdp-unix.h"

/* Permission bits vdp_unix_listen() honours (no setuid/sticky on sockets). */
#define VDP_UNIX_MODE_MASK 0777

static void close_keep_errno(int fd)
{
    int saved = errno;
    close(fd);
    errno = saved;
}

static bool fill_addr(const char *path, struct sockaddr_un *addr)
{
    if (!path || path[0] == '\0') {
        errno = EINVAL;
        return false;
    }
    size_t len = strlen(path);
    if (len >= sizeof(addr->sun_path)) {
        errno = ENAMETOOLONG;
        return false;
    }
    memset(addr, 0, sizeof(*addr));
    addr->sun_family = AF_UNIX;
    memcpy(addr->sun_path, path, len + 1);
    return true;
}

static int new_socket(void)
{
    return socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
}

/* Does a process listen on the socket at addr? Returns 1 (yes), 0 (no:
 * stale), -1 (cannot tell, errno set). */
static int socket_in_use(const struct sockaddr_un *addr)
{
    int fd = new_socket();
    if (fd < 0)
        return -1;
    int r = connect(fd, (const struct sockaddr *)addr, sizeof(*addr));
    int e = errno;
    close(fd);
    if (r == 0)
        return 1;
    if (e == EAGAIN || e == EINPROGRESS)
        return 1;                       /* listening, backlog full */
    if (e == ECONNREFUSED)
        return 0;                       /* a socket file without a listener */
    if (e == ENOENT)
        return 0;                       /* went away meanwhile */
    errno = e;
    return -1;
}

/* bind() with the permissions given through the umask, so the socket never
 * exists with wider permissions than asked for. The umask is process-wide:
 * call this from the main thread during setup. */
static int bind_with_mode(int fd, const struct sockaddr_un *addr, mode_t mode)
{
    mode_t old = umask((mode_t)(~mode & VDP_UNIX_MODE_MASK));
    int r = bind(fd, (const struct sockaddr *)addr, sizeof(*addr));
    int e = errno;
    umask(old);
    errno = e;
    return r;
}

int vdp_unix_listen(const char *path, mode_t mode, int backlog)
{
    struct sockaddr_un addr;

    if (!fill_addr(path, &addr))
        return -1;
    if (backlog <= 0)
        backlog = SOMAXCONN;

    int fd = new_socket();
    if (fd < 0)
        return -1;

    if (bind_with_mode(fd, &addr, mode) < 0) {
        if (errno != EADDRINUSE) {
            close_keep_errno(fd);
            return -1;
        }
        /* Something is at path. Replace it only if it is a socket nobody
         * listens on; lstat so that a symlink is never followed/removed. */
        struct stat st;
        if (lstat(path, &st) < 0) {
            if (errno != ENOENT) {
                close_keep_errno(fd);
                return -1;
            }
        } else if (!S_ISSOCK(st.st_mode)) {
            close(fd);
            errno = EEXIST;
            return -1;
        } else {
            int used = socket_in_use(&addr);
            if (used != 0) {
                int e = used > 0 ? EADDRINUSE : errno;
                close(fd);
                errno = e;
                return -1;
            }
            if (unlink(path) < 0 && errno != ENOENT) {
                close_keep_errno(fd);
                return -1;
            }
        }
        if (bind_with_mode(fd, &addr, mode) < 0) {
            close_keep_errno(fd);
            return -1;
        }
    }
    if (listen(fd, backlog) < 0) {
        int e = errno;
        unlink(path);
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int vdp_unix_connect(const char *path)
{
    struct sockaddr_un addr;

    if (!fill_addr(path, &addr))
        return -1;
    int fd = new_socket();
    if (fd < 0)
        return -1;
    if (connect(fd, (const struct sockaddr *)&addr, sizeof(addr)) < 0) {
        /* An AF_UNIX connect never completes later: EINPROGRESS does not
         * happen for it, EAGAIN means the listener's backlog is full. */
        close_keep_errno(fd);
        return -1;
    }
    return fd;
}

int vdp_unix_accept(int listen_fd)
{
    int fd;

    if (listen_fd < 0) {
        errno = EBADF;
        return -1;
    }
    do {
        fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    } while (fd < 0 && errno == EINTR);
    return fd;
}

bool vdp_path_is_socket(const char *path)
{
    struct stat st;

    if (!path)
        return false;
    return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}
