/* A SQLite VFS that writes each commit's WAL frames with one write() instead of two per page.
 *
 * SQLite writes a WAL frame as two pwrite() calls (its 24-byte header, then the page), so a
 * commit of ten dirty pages is twenty system calls, each partly writing a page-cache page
 * (perf at 5,000 msg/s: pwrite was a quarter of the writer thread's CPU). This VFS wraps
 * the default one and, for WAL files only, gathers contiguous writes in a buffer that goes
 * to the file with one pwrite() when:
 *   - the page of a commit frame has been written (a frame header whose "database size
 *     after commit" field is non-zero marks the commit frame): inside that xWrite, so a
 *     failed write fails the commit, as it would have without the buffer;
 *   - a write does not follow the buffered bytes (an overwritten frame), or would overflow
 *     the buffer;
 *   - any other method is called on the WAL file (read, sync, truncate, size, lock, close,
 *     file control, shm): SQLite and every other connection see the file as if each write
 *     had gone through at once, except for the frames of a commit still being written,
 *     which nothing reads before the commit is published.
 *   - the connection releases the WAL write lock (the main database file's xShmLock):
 *     what is still gathered then are frames a transaction spilled before it rolled back
 *     (SQLite would have written them, past the WAL's end); written while the lock is
 *     still held, they can never land over frames another connection commits later.
 * So frames are gathered only while their connection holds the WAL write lock. A commit
 * becomes visible to other connections when the writer updates the WAL index header in
 * shared memory, after sqlite3WalFrames has written the commit frame — after the flush.
 * Durability is unchanged: nothing is synced that was not, and a crash before the flush
 * loses only a commit that had not returned.
 *
 * The main database file is wrapped only to see that unlock (every call passes through);
 * other files (journals, temporary files) are the default VFS's own.
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "_walvfs.h"

/* BUFFER_CAP: the unix VFS writes at most 0x1ffff bytes per call (seekAndWriteFd masks the
 * length; more would be a short write, reported as SQLITE_FULL). */
enum { WAL_FRAME_HEADER = 24, BUFFER_CAP = 120 * 1024 };

/* The WAL lock SQLite's WAL index takes for a write transaction (wal.c: WAL_WRITE_LOCK). */
enum { WAL_WRITE_LOCK = 0 };

/* What both wrappers begin with: SQLite's view of the file, and the default VFS's file
 * (right after the wrapper, in the memory SQLite gave it: szOsFile). */
typedef struct {
    sqlite3_file base;
    sqlite3_file *real;
} Wrapped;

typedef struct DbFile DbFile;

typedef struct {
    Wrapped w;           /* w.base.pMethods = &wal_methods */
    DbFile *db;          /* the main database file of the same connection, or NULL */
    unsigned char *buf;  /* gathered writes, or NULL before the first */
    sqlite3_int64 off;   /* file offset of buf[0] */
    int len;             /* bytes gathered */
    int commit_page;     /* the next write is the page of a commit frame */
} WalFile;

struct DbFile {
    Wrapped w;           /* w.base.pMethods = &db_methods */
    WalFile *wal;        /* its connection's WAL file while open, or NULL */
};

static sqlite3_vfs walvfs;
static sqlite3_vfs *base_vfs;

#define REAL(file) (((Wrapped *)(file))->real)

/* --- every call passed to the default VFS's file, as it is -------------------------- */
static int fwd_read(sqlite3_file *file, void *out, int amt, sqlite3_int64 off) {
    return REAL(file)->pMethods->xRead(REAL(file), out, amt, off);
}
static int fwd_write(sqlite3_file *file, const void *data, int amt, sqlite3_int64 off) {
    return REAL(file)->pMethods->xWrite(REAL(file), data, amt, off);
}
static int fwd_truncate(sqlite3_file *file, sqlite3_int64 size) {
    return REAL(file)->pMethods->xTruncate(REAL(file), size);
}
static int fwd_sync(sqlite3_file *file, int flags) { return REAL(file)->pMethods->xSync(REAL(file), flags); }
static int fwd_file_size(sqlite3_file *file, sqlite3_int64 *size) {
    return REAL(file)->pMethods->xFileSize(REAL(file), size);
}
static int fwd_lock(sqlite3_file *file, int level) { return REAL(file)->pMethods->xLock(REAL(file), level); }
static int fwd_unlock(sqlite3_file *file, int level) { return REAL(file)->pMethods->xUnlock(REAL(file), level); }
static int fwd_check_reserved(sqlite3_file *file, int *out) {
    return REAL(file)->pMethods->xCheckReservedLock(REAL(file), out);
}
static int fwd_file_control(sqlite3_file *file, int op, void *arg) {
    return REAL(file)->pMethods->xFileControl(REAL(file), op, arg);
}
static int fwd_sector_size(sqlite3_file *file) { return REAL(file)->pMethods->xSectorSize(REAL(file)); }
static int fwd_device_characteristics(sqlite3_file *file) {
    return REAL(file)->pMethods->xDeviceCharacteristics(REAL(file));
}
static int fwd_shm_map(sqlite3_file *file, int page, int size, int extend, void volatile **out) {
    return REAL(file)->pMethods->xShmMap(REAL(file), page, size, extend, out);
}
static int fwd_shm_lock(sqlite3_file *file, int offset, int n, int flags) {
    return REAL(file)->pMethods->xShmLock(REAL(file), offset, n, flags);
}
static void fwd_shm_barrier(sqlite3_file *file) { REAL(file)->pMethods->xShmBarrier(REAL(file)); }
static int fwd_shm_unmap(sqlite3_file *file, int delete_flag) {
    return REAL(file)->pMethods->xShmUnmap(REAL(file), delete_flag);
}
static int fwd_fetch(sqlite3_file *file, sqlite3_int64 off, int amt, void **out) {
    return REAL(file)->pMethods->xFetch(REAL(file), off, amt, out);
}
static int fwd_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p) {
    return REAL(file)->pMethods->xUnfetch(REAL(file), off, p);
}

/* --- the WAL file: writes gathered, written before anything else is done with it ----- */
static int flush(WalFile *f) {
    if (f->len == 0)
        return SQLITE_OK;
    int len = f->len;
    f->len = 0;
    return f->w.real->pMethods->xWrite(f->w.real, f->buf, len, f->off);
}

#define FLUSH_OR_RETURN(file)                       \
    do {                                            \
        int frc_ = flush((WalFile *)(file));        \
        if (frc_ != SQLITE_OK)                      \
            return frc_;                            \
    } while (0)

static int wal_close(sqlite3_file *file) {
    WalFile *f = (WalFile *)file;
    if (f->db != NULL) {
        f->db->wal = NULL;
        f->db = NULL;
    }
    int rc = flush(f);
    int crc = f->w.real->pMethods->xClose(f->w.real);
    free(f->buf);
    f->buf = NULL;
    return rc != SQLITE_OK ? rc : crc;
}

static int wal_write(sqlite3_file *file, const void *data, int amt, sqlite3_int64 off) {
    WalFile *f = (WalFile *)file;
    int commit_page = f->commit_page;
    f->commit_page = 0;
    if (f->len > 0 && (off != f->off + f->len || f->len + amt > BUFFER_CAP))
        FLUSH_OR_RETURN(f);
    if (amt > BUFFER_CAP)
        return fwd_write(file, data, amt, off);
    if (f->buf == NULL) {
        f->buf = malloc(BUFFER_CAP);
        if (f->buf == NULL)
            return fwd_write(file, data, amt, off);
    }
    if (f->len == 0)
        f->off = off;
    memcpy(f->buf + f->len, data, (size_t)amt);
    f->len += amt;
    if (commit_page)
        return flush(f);
    if (amt == WAL_FRAME_HEADER) {
        const unsigned char *h = data; /* big-endian: page number, then database size after commit */
        f->commit_page = (h[4] | h[5] | h[6] | h[7]) != 0;
    }
    return SQLITE_OK;
}

static int wal_read(sqlite3_file *file, void *out, int amt, sqlite3_int64 off) {
    FLUSH_OR_RETURN(file);
    return fwd_read(file, out, amt, off);
}
static int wal_truncate(sqlite3_file *file, sqlite3_int64 size) {
    FLUSH_OR_RETURN(file);
    return fwd_truncate(file, size);
}
static int wal_sync(sqlite3_file *file, int flags) {
    FLUSH_OR_RETURN(file);
    return fwd_sync(file, flags);
}
static int wal_file_size(sqlite3_file *file, sqlite3_int64 *size) {
    FLUSH_OR_RETURN(file);
    return fwd_file_size(file, size);
}
static int wal_lock(sqlite3_file *file, int level) {
    FLUSH_OR_RETURN(file);
    return fwd_lock(file, level);
}
static int wal_unlock(sqlite3_file *file, int level) {
    FLUSH_OR_RETURN(file);
    return fwd_unlock(file, level);
}
static int wal_check_reserved(sqlite3_file *file, int *out) {
    FLUSH_OR_RETURN(file);
    return fwd_check_reserved(file, out);
}
static int wal_file_control(sqlite3_file *file, int op, void *arg) {
    FLUSH_OR_RETURN(file);
    return fwd_file_control(file, op, arg);
}
/* SQLite uses shared memory through the main database file, never through a WAL file */
static int wal_shm_map(sqlite3_file *file, int page, int size, int extend, void volatile **out) {
    FLUSH_OR_RETURN(file);
    return fwd_shm_map(file, page, size, extend, out);
}
static int wal_shm_lock(sqlite3_file *file, int offset, int n, int flags) {
    FLUSH_OR_RETURN(file);
    return fwd_shm_lock(file, offset, n, flags);
}
static void wal_shm_barrier(sqlite3_file *file) {
    (void)flush((WalFile *)file);
    fwd_shm_barrier(file);
}
static int wal_shm_unmap(sqlite3_file *file, int delete_flag) {
    FLUSH_OR_RETURN(file);
    return fwd_shm_unmap(file, delete_flag);
}
static int wal_fetch(sqlite3_file *file, sqlite3_int64 off, int amt, void **out) {
    FLUSH_OR_RETURN(file);
    return fwd_fetch(file, off, amt, out);
}

static const sqlite3_io_methods wal_methods = {
    3, wal_close, wal_read, wal_write, wal_truncate, wal_sync, wal_file_size, wal_lock, wal_unlock,
    wal_check_reserved, wal_file_control, fwd_sector_size, fwd_device_characteristics,
    wal_shm_map, wal_shm_lock, wal_shm_barrier, wal_shm_unmap, wal_fetch, fwd_unfetch,
};

/* --- the main database file: every call as it is, but releasing the WAL write lock first
 * writes what its WAL file still gathers (see the top of this file) --------------------- */
static int db_close(sqlite3_file *file) {
    DbFile *d = (DbFile *)file;
    if (d->wal != NULL) {
        d->wal->db = NULL;
        d->wal = NULL;
    }
    return d->w.real->pMethods->xClose(d->w.real);
}

static int db_shm_lock(sqlite3_file *file, int offset, int n, int flags) {
    DbFile *d = (DbFile *)file;
    if ((flags & SQLITE_SHM_UNLOCK) && (flags & SQLITE_SHM_EXCLUSIVE) && offset <= WAL_WRITE_LOCK &&
        WAL_WRITE_LOCK < offset + n && d->wal != NULL)
        (void)flush(d->wal); /* frames of a rolled-back transaction: their loss is harmless */
    return fwd_shm_lock(file, offset, n, flags);
}

static const sqlite3_io_methods db_methods = {
    3, db_close, fwd_read, fwd_write, fwd_truncate, fwd_sync, fwd_file_size, fwd_lock, fwd_unlock,
    fwd_check_reserved, fwd_file_control, fwd_sector_size, fwd_device_characteristics,
    fwd_shm_map, db_shm_lock, fwd_shm_barrier, fwd_shm_unmap, fwd_fetch, fwd_unfetch,
};

/* Opens the default VFS's file into `real`: SQLITE_OK with a file that has every method
 * (the unix VFS's, checked at registration), else an error with nothing left open. */
static int open_real(sqlite3_file *real, sqlite3_filename name, int flags, int *out_flags) {
    int rc = base_vfs->xOpen(base_vfs, name, real, flags, out_flags);
    if (rc == SQLITE_OK && (real->pMethods == NULL || real->pMethods->iVersion < 3))
        rc = SQLITE_CANTOPEN;
    if (rc != SQLITE_OK && real->pMethods != NULL)
        real->pMethods->xClose(real);
    return rc;
}

static int vfs_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file, int flags, int *out_flags) {
    if (flags & SQLITE_OPEN_MAIN_DB) {
        DbFile *d = (DbFile *)file;
        memset(d, 0, sizeof(*d));
        d->w.real = (sqlite3_file *)(d + 1);
        int rc = open_real(d->w.real, name, flags, out_flags);
        d->w.base.pMethods = rc == SQLITE_OK ? &db_methods : NULL;
        return rc;
    }
    if (!(flags & SQLITE_OPEN_WAL))
        return base_vfs->xOpen(base_vfs, name, file, flags, out_flags); /* fits: szOsFile is larger */
    WalFile *f = (WalFile *)file;
    memset(f, 0, sizeof(*f));
    f->w.real = (sqlite3_file *)(f + 1);
    int rc = open_real(f->w.real, name, flags, out_flags);
    f->w.base.pMethods = rc == SQLITE_OK ? &wal_methods : NULL;
    if (rc != SQLITE_OK)
        return rc;
    /* the same connection's main database file (SQLite opens it first, and closes it last) */
    sqlite3_file *db = sqlite3_database_file_object(name);
    if (db != NULL && db->pMethods == &db_methods && ((DbFile *)db)->wal == NULL) {
        f->db = (DbFile *)db;
        f->db->wal = f;
    }
    return SQLITE_OK;
}

/* Everything but xOpen is the default VFS's. */
static int vfs_delete(sqlite3_vfs *v, const char *name, int sync_dir) {
    return base_vfs->xDelete(base_vfs, name, sync_dir);
}
static int vfs_access(sqlite3_vfs *v, const char *name, int flags, int *out) {
    return base_vfs->xAccess(base_vfs, name, flags, out);
}
static int vfs_full_pathname(sqlite3_vfs *v, const char *name, int n, char *out) {
    return base_vfs->xFullPathname(base_vfs, name, n, out);
}
static void *vfs_dl_open(sqlite3_vfs *v, const char *name) { return base_vfs->xDlOpen(base_vfs, name); }
static void vfs_dl_error(sqlite3_vfs *v, int n, char *out) { base_vfs->xDlError(base_vfs, n, out); }
static void (*vfs_dl_sym(sqlite3_vfs *v, void *h, const char *sym))(void) {
    return base_vfs->xDlSym(base_vfs, h, sym);
}
static void vfs_dl_close(sqlite3_vfs *v, void *h) { base_vfs->xDlClose(base_vfs, h); }
static int vfs_randomness(sqlite3_vfs *v, int n, char *out) { return base_vfs->xRandomness(base_vfs, n, out); }
static int vfs_sleep(sqlite3_vfs *v, int us) { return base_vfs->xSleep(base_vfs, us); }
static int vfs_current_time(sqlite3_vfs *v, double *out) { return base_vfs->xCurrentTime(base_vfs, out); }
static int vfs_get_last_error(sqlite3_vfs *v, int n, char *out) {
    return base_vfs->xGetLastError ? base_vfs->xGetLastError(base_vfs, n, out) : 0;
}
static int vfs_current_time_int64(sqlite3_vfs *v, sqlite3_int64 *out) {
    return base_vfs->xCurrentTimeInt64(base_vfs, out);
}

/* Registers the VFS (once; not as the default). Returns 0, or a SQLite error code. */
int izh_walvfs_register(void) {
    if (sqlite3_vfs_find(IZH_WALVFS_NAME) != NULL)
        return SQLITE_OK;
    base_vfs = sqlite3_vfs_find(NULL);
    /* over the unix VFS only: its files have every method (io methods version 3) */
    if (base_vfs == NULL || base_vfs->iVersion < 2 || base_vfs->xCurrentTimeInt64 == NULL ||
        strncmp(base_vfs->zName, "unix", 4) != 0)
        return SQLITE_ERROR;
    walvfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)(sizeof(WalFile) > sizeof(DbFile) ? sizeof(WalFile) : sizeof(DbFile)) + base_vfs->szOsFile,
        .mxPathname = base_vfs->mxPathname,
        .zName = IZH_WALVFS_NAME,
        .xOpen = vfs_open,
        .xDelete = vfs_delete,
        .xAccess = vfs_access,
        .xFullPathname = vfs_full_pathname,
        .xDlOpen = vfs_dl_open,
        .xDlError = vfs_dl_error,
        .xDlSym = vfs_dl_sym,
        .xDlClose = vfs_dl_close,
        .xRandomness = vfs_randomness,
        .xSleep = vfs_sleep,
        .xCurrentTime = vfs_current_time,
        .xGetLastError = vfs_get_last_error,
        .xCurrentTimeInt64 = vfs_current_time_int64,
    };
    return sqlite3_vfs_register(&walvfs, 0);
}
