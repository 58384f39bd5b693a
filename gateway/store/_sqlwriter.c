/* The SQLite store's writer thread: a write transaction's last statements and its COMMIT
 * off the event loop's thread, with the GIL released once for all of them.
 *
 * The stdlib `sqlite3` releases the GIL inside each statement step and takes it back after
 * it, so a Python thread running a batch takes the GIL back from the busy event loop once
 * per row (measured: waits of up to the 5 ms switch interval each; the batch on a Python
 * thread was slower than inline). `Writer` runs a job — a list of (statement, rows) steps,
 * typically a batch's seq UPDATEs, its message INSERTs and the COMMIT — on a thread of its
 * own that never takes the GIL, and signals an eventfd when the job is done. The loop
 * converts the parameters to C values before (`submit`) and collects the outcome after
 * (`rows`, `result`); nothing of Python is touched in between. A step marked to collect
 * keeps the rows its statement returns (copied into the job's memory on the thread,
 * turned into tuples by `rows` on the loop): that lets a whole transaction, reads
 * included, be one job (the SQLite store's batch append, `sqlite.py`).
 *
 * The job runs on the *same* SQLite connection as the store's `sqlite3.Connection` (its
 * `sqlite3 *`, read from the object: `Writer` checks the type, and the Python side checks
 * the library version and the connection's file name before it uses a writer), so it is
 * part of the transaction the loop began and whose reads it did. The Python side (the
 * store's lock) guarantees that nothing else uses the connection from `submit` until
 * `result`; the library is built thread-safe (checked), so even a mistake there could not
 * corrupt memory, only the transaction.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sqlite3.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "_walvfs.h"

enum { ST_IDLE = 0, ST_QUEUED = 1, ST_DONE = 2 };
enum { CACHE_MAX = 32 };

typedef struct {
    int type; /* SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB (collected only) or SQLITE_NULL */
    int n;    /* text, blob: bytes */
    sqlite3_int64 i;
    double d;
    const char *s; /* text, blob: in the job's arena */
} Value;

/* A row a collecting step returned: in the job's arena, in the order the steps ran. */
typedef struct OutRow {
    struct OutRow *next;
    size_t ncols;
    Value values[];
} OutRow;

typedef struct {
    const char *sql; /* NUL-terminated, in the arena */
    int nsql;
    int once;     /* run once without parameters (rows was None) */
    int collect;  /* keep the rows the statement returns (`Writer.rows`) */
    size_t nrows;
    size_t ncols;
    Value *values; /* nrows * ncols */
} Step;

typedef struct Chunk {
    struct Chunk *next;
    size_t used;
    size_t cap;
    char data[];
} Chunk;

typedef struct {
    char *sql;
    sqlite3_stmt *stmt;
} Cached;

typedef struct {
    PyObject_HEAD
    sqlite3 *db;
    PyObject *conn; /* the sqlite3.Connection whose handle `db` is: kept alive */
    int efd;
    int started;
    int closed;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state;
    int stop;
    /* The job: built by the loop while ST_IDLE, read by the thread while ST_QUEUED. */
    Step *steps;
    size_t nsteps;
    Chunk *arena;
    /* The outcome: written by the thread, read by the loop once ST_DONE. */
    int rc;
    int xrc;
    char *errmsg;
    Py_ssize_t failed_step;
    OutRow *out_head; /* the collected rows (in the arena) */
    OutRow **out_tail;
    size_t nout;
    /* Prepared statements: the thread's while it runs, close's after the join. */
    Cached cache[CACHE_MAX];
    size_t ncache;
} Writer;

/* The head of CPython's sqlite3.Connection (Modules/_sqlite/connection.h, 3.11-3.13). */
typedef struct {
    PyObject_HEAD
    sqlite3 *db;
} ConnectionHead;

static void *arena_alloc(Chunk **arena, size_t size) {
    size = (size + 15) & ~(size_t)15;
    Chunk *c = *arena;
    if (c == NULL || c->cap - c->used < size) {
        size_t cap = size > 65536 ? size : 65536;
        Chunk *n = malloc(sizeof(Chunk) + cap);
        if (n == NULL)
            return NULL;
        n->next = c;
        n->used = 0;
        n->cap = cap;
        *arena = c = n;
    }
    void *p = c->data + c->used;
    c->used += size;
    return p;
}

/* The job's memory: the arena's newest chunk is kept for the next job (a chunk malloc'd
 * and freed per job cost more than the conversion), unless it is a large one. */
static void job_free(Writer *w) {
    Chunk *keep = w->arena;
    if (keep != NULL && keep->cap > 4 * 65536)
        keep = NULL;
    Chunk *c = w->arena;
    while (c != NULL) {
        Chunk *next = c->next;
        if (c != keep)
            free(c);
        c = next;
    }
    if (keep != NULL) {
        keep->next = NULL;
        keep->used = 0;
    }
    w->arena = keep;
    w->steps = NULL;
    w->nsteps = 0;
    free(w->errmsg);
    w->errmsg = NULL;
    w->rc = SQLITE_OK;
    w->xrc = SQLITE_OK;
    w->failed_step = -1;
    w->out_head = NULL;
    w->out_tail = &w->out_head;
    w->nout = 0;
}

/* --- the thread (never takes the GIL) ------------------------------------------------ */

static sqlite3_stmt *statement(Writer *w, const Step *st, int *temporary) {
    *temporary = 0;
    for (size_t k = 0; k < w->ncache; k++)
        if (strcmp(w->cache[k].sql, st->sql) == 0)
            return w->cache[k].stmt;
    sqlite3_stmt *stmt = NULL;
    const char *tail = NULL;
    if (sqlite3_prepare_v3(w->db, st->sql, st->nsql + 1, SQLITE_PREPARE_PERSISTENT, &stmt, &tail) != SQLITE_OK)
        return NULL;
    if (stmt == NULL) /* an empty statement */
        return NULL;
    while (tail != NULL && (*tail == ' ' || *tail == '\n' || *tail == '\t' || *tail == ';'))
        tail++;
    if (tail != NULL && *tail != '\0') {
        sqlite3_finalize(stmt);
        return NULL;
    }
    char *copy = w->ncache < CACHE_MAX ? strdup(st->sql) : NULL;
    if (copy == NULL) {
        *temporary = 1;
        return stmt;
    }
    w->cache[w->ncache].sql = copy;
    w->cache[w->ncache].stmt = stmt;
    w->ncache++;
    return stmt;
}

/* Copy the statement's current row into the job's arena (the thread owns the arena while
 * the job runs). */
static int collect_row(Writer *w, sqlite3_stmt *stmt) {
    size_t ncols = (size_t)sqlite3_column_count(stmt);
    OutRow *row = arena_alloc(&w->arena, sizeof(OutRow) + ncols * sizeof(Value));
    if (row == NULL)
        return SQLITE_NOMEM;
    row->next = NULL;
    row->ncols = ncols;
    for (size_t c = 0; c < ncols; c++) {
        Value *v = &row->values[c];
        int at = (int)c;
        v->type = sqlite3_column_type(stmt, at);
        switch (v->type) {
        case SQLITE_INTEGER: v->i = sqlite3_column_int64(stmt, at); break;
        case SQLITE_FLOAT: v->d = sqlite3_column_double(stmt, at); break;
        case SQLITE_TEXT:
        case SQLITE_BLOB: {
            const void *src = v->type == SQLITE_TEXT ? (const void *)sqlite3_column_text(stmt, at)
                                                     : sqlite3_column_blob(stmt, at);
            int n = sqlite3_column_bytes(stmt, at);
            char *copy = arena_alloc(&w->arena, (size_t)n + 1);
            if (copy == NULL)
                return SQLITE_NOMEM;
            if (n > 0 && src != NULL)
                memcpy(copy, src, (size_t)n);
            copy[n] = '\0';
            v->s = copy;
            v->n = n;
            break;
        }
        default: v->type = SQLITE_NULL; break;
        }
    }
    *w->out_tail = row;
    w->out_tail = &row->next;
    w->nout++;
    return SQLITE_OK;
}

static int run_stmt(Writer *w, sqlite3_stmt *stmt, int collect) {
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (collect && (rc = collect_row(w, stmt)) != SQLITE_OK)
            return rc;
    }
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int bind_row(sqlite3_stmt *stmt, const Value *row, size_t ncols) {
    for (size_t c = 0; c < ncols; c++) {
        const Value *v = &row[c];
        int rc;
        int at = (int)c + 1;
        switch (v->type) {
        case SQLITE_INTEGER: rc = sqlite3_bind_int64(stmt, at, v->i); break;
        case SQLITE_FLOAT: rc = sqlite3_bind_double(stmt, at, v->d); break;
        case SQLITE_TEXT: rc = sqlite3_bind_text(stmt, at, v->s, v->n, SQLITE_STATIC); break;
        default: rc = sqlite3_bind_null(stmt, at); break;
        }
        if (rc != SQLITE_OK)
            return rc;
    }
    return SQLITE_OK;
}

static void fail(Writer *w, size_t k, int rc, const char *msg) {
    w->rc = rc;
    w->xrc = sqlite3_extended_errcode(w->db);
    if (w->xrc == SQLITE_OK || (w->xrc & 0xff) != (rc & 0xff))
        w->xrc = rc;
    w->errmsg = strdup(msg != NULL ? msg : sqlite3_errmsg(w->db));
    w->failed_step = (Py_ssize_t)k;
}

static void run_job(Writer *w) {
    for (size_t k = 0; k < w->nsteps; k++) {
        const Step *st = &w->steps[k];
        int temporary = 0;
        sqlite3_stmt *stmt = statement(w, st, &temporary);
        if (stmt == NULL) {
            int rc = sqlite3_errcode(w->db);
            fail(w, k, rc == SQLITE_OK ? SQLITE_MISUSE : rc,
                 rc == SQLITE_OK ? "a step must be exactly one SQL statement" : NULL);
            return;
        }
        int rc = SQLITE_OK;
        if (st->once) {
            rc = run_stmt(w, stmt, st->collect);
            if (rc != SQLITE_OK)
                fail(w, k, rc, NULL);
            sqlite3_reset(stmt);
        } else if ((size_t)sqlite3_bind_parameter_count(stmt) != st->ncols) {
            rc = SQLITE_RANGE;
            fail(w, k, rc, "the rows' length is not the statement's parameter count");
        } else {
            for (size_t r = 0; r < st->nrows && rc == SQLITE_OK; r++) {
                rc = bind_row(stmt, &st->values[r * st->ncols], st->ncols);
                if (rc == SQLITE_OK)
                    rc = run_stmt(w, stmt, st->collect);
                if (rc != SQLITE_OK)
                    fail(w, k, rc, NULL);
                sqlite3_reset(stmt);
                sqlite3_clear_bindings(stmt);
            }
        }
        if (temporary)
            sqlite3_finalize(stmt);
        if (rc != SQLITE_OK)
            return;
    }
}

static void *thread_main(void *arg) {
    Writer *w = arg;
    /* SCHED_BATCH: a wakeup by `submit` does not preempt the event loop's thread (which
     * holds the GIL) on its core; the job runs on an idle core or when the loop waits. */
    struct sched_param batch = {0};
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &batch);
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (w->state != ST_QUEUED && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->state != ST_QUEUED)
            break; /* stop, nothing queued */
        pthread_mutex_unlock(&w->mu);
        run_job(w);
        pthread_mutex_lock(&w->mu);
        w->state = ST_DONE;
        uint64_t one = 1;
        ssize_t n;
        do {
            n = write(w->efd, &one, sizeof one);
        } while (n < 0 && errno == EINTR);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* --- the loop's side (with the GIL) ---------------------------------------------------- */

static int convert_value(PyObject *o, Value *v, Chunk **arena) {
    if (o == Py_None) {
        v->type = SQLITE_NULL;
    } else if (PyLong_Check(o)) {
        v->type = SQLITE_INTEGER;
        v->i = PyLong_AsLongLong(o);
        if (v->i == -1 && PyErr_Occurred())
            return -1;
    } else if (PyFloat_Check(o)) {
        v->type = SQLITE_FLOAT;
        v->d = PyFloat_AS_DOUBLE(o);
    } else if (PyUnicode_Check(o)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(o, &n);
        if (s == NULL)
            return -1;
        if (n > INT32_MAX) {
            PyErr_SetString(PyExc_OverflowError, "text too long");
            return -1;
        }
        char *copy = arena_alloc(arena, (size_t)n + 1);
        if (copy == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        memcpy(copy, s, (size_t)n + 1);
        v->type = SQLITE_TEXT;
        v->s = copy;
        v->n = (int)n;
    } else {
        PyErr_Format(PyExc_TypeError, "unsupported parameter type %.100s (None, int, float or str)",
                     Py_TYPE(o)->tp_name);
        return -1;
    }
    return 0;
}

static int convert_step(PyObject *item, Step *st, Chunk **arena) {
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) < 2 || PyTuple_GET_SIZE(item) > 3) {
        PyErr_SetString(PyExc_TypeError, "a step is a (sql, rows or None[, collect]) tuple");
        return -1;
    }
    PyObject *sql = PyTuple_GET_ITEM(item, 0);
    PyObject *rows = PyTuple_GET_ITEM(item, 1);
    if (PyTuple_GET_SIZE(item) == 3) {
        int collect = PyObject_IsTrue(PyTuple_GET_ITEM(item, 2));
        if (collect < 0)
            return -1;
        st->collect = collect;
    }
    if (!PyUnicode_Check(sql)) {
        PyErr_SetString(PyExc_TypeError, "a step's sql must be str");
        return -1;
    }
    Value text;
    if (convert_value(sql, &text, arena) < 0)
        return -1;
    st->sql = text.s;
    st->nsql = text.n;
    if (rows == Py_None) {
        st->once = 1;
        return 0;
    }
    if (!PyList_Check(rows)) {
        PyErr_SetString(PyExc_TypeError, "a step's rows must be a list of tuples or None");
        return -1;
    }
    st->nrows = (size_t)PyList_GET_SIZE(rows);
    if (st->nrows == 0)
        return 0;
    PyObject *first = PyList_GET_ITEM(rows, 0);
    if (!PyTuple_Check(first)) {
        PyErr_SetString(PyExc_TypeError, "a row must be a tuple");
        return -1;
    }
    st->ncols = (size_t)PyTuple_GET_SIZE(first);
    if (st->ncols == 0) {
        PyErr_SetString(PyExc_ValueError, "a row must not be empty");
        return -1;
    }
    st->values = arena_alloc(arena, st->nrows * st->ncols * sizeof(Value));
    if (st->values == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t r = 0; r < st->nrows; r++) {
        PyObject *row = PyList_GET_ITEM(rows, (Py_ssize_t)r);
        if (!PyTuple_Check(row) || (size_t)PyTuple_GET_SIZE(row) != st->ncols) {
            PyErr_SetString(PyExc_ValueError, "every row of a step must be a tuple of the same length");
            return -1;
        }
        for (size_t c = 0; c < st->ncols; c++)
            if (convert_value(PyTuple_GET_ITEM(row, (Py_ssize_t)c), &st->values[r * st->ncols + c], arena) < 0)
                return -1;
    }
    return 0;
}

static int Writer_init(Writer *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"connection", "eventfd", NULL};
    PyObject *conn;
    int efd;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Oi", kwlist, &conn, &efd))
        return -1;
    if (self->started) {
        PyErr_SetString(PyExc_RuntimeError, "Writer already initialised");
        return -1;
    }
    if (strcmp(Py_TYPE(conn)->tp_name, "sqlite3.Connection") != 0) {
        PyErr_SetString(PyExc_TypeError, "connection must be a sqlite3.Connection");
        return -1;
    }
    if (!sqlite3_threadsafe()) {
        PyErr_SetString(PyExc_RuntimeError, "the SQLite library is not built thread-safe");
        return -1;
    }
    sqlite3 *db = ((ConnectionHead *)conn)->db;
    if (db == NULL) {
        PyErr_SetString(PyExc_ValueError, "the connection is closed");
        return -1;
    }
    if (efd < 0) {
        PyErr_SetString(PyExc_ValueError, "eventfd must be a descriptor");
        return -1;
    }
    self->db = db;
    Py_INCREF(conn);
    self->conn = conn;
    self->efd = efd;
    self->failed_step = -1;
    self->out_tail = &self->out_head;
    pthread_mutex_init(&self->mu, NULL);
    pthread_cond_init(&self->cv, NULL);
    int err = pthread_create(&self->thread, NULL, thread_main, self);
    if (err != 0) {
        errno = err;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    self->started = 1;
    return 0;
}

static PyObject *Writer_filename(Writer *self, PyObject *unused) {
    if (!self->started || self->closed) {
        PyErr_SetString(PyExc_RuntimeError, "the writer is closed");
        return NULL;
    }
    const char *name = sqlite3_db_filename(self->db, "main");
    return PyUnicode_FromString(name != NULL ? name : "");
}

static int read_state(Writer *self) {
    pthread_mutex_lock(&self->mu);
    int state = self->state;
    pthread_mutex_unlock(&self->mu);
    return state;
}

static PyObject *Writer_submit(Writer *self, PyObject *steps) {
    if (!self->started || self->closed) {
        PyErr_SetString(PyExc_RuntimeError, "the writer is closed");
        return NULL;
    }
    if (!PyList_Check(steps) || PyList_GET_SIZE(steps) == 0) {
        PyErr_SetString(PyExc_TypeError, "steps must be a non-empty list");
        return NULL;
    }
    if (read_state(self) != ST_IDLE) {
        PyErr_SetString(PyExc_RuntimeError, "a job is in flight: collect its result first");
        return NULL;
    }
    job_free(self);
    size_t n = (size_t)PyList_GET_SIZE(steps);
    self->steps = arena_alloc(&self->arena, n * sizeof(Step));
    if (self->steps == NULL) {
        job_free(self);
        return PyErr_NoMemory();
    }
    memset(self->steps, 0, n * sizeof(Step));
    for (size_t k = 0; k < n; k++) {
        if (convert_step(PyList_GET_ITEM(steps, (Py_ssize_t)k), &self->steps[k], &self->arena) < 0) {
            job_free(self);
            return NULL;
        }
    }
    self->nsteps = n;
    pthread_mutex_lock(&self->mu);
    self->state = ST_QUEUED;
    pthread_cond_signal(&self->cv);
    pthread_mutex_unlock(&self->mu);
    Py_RETURN_NONE;
}

static PyObject *Writer_result(Writer *self, PyObject *unused) {
    if (!self->started) {
        PyErr_SetString(PyExc_RuntimeError, "the writer was not initialised");
        return NULL;
    }
    int state = read_state(self);
    if (state != ST_DONE) {
        PyErr_SetString(PyExc_RuntimeError, state == ST_QUEUED ? "the job is still running" : "no job submitted");
        return NULL;
    }
    PyObject *out;
    if (self->rc == SQLITE_OK) {
        out = Py_None;
        Py_INCREF(out);
    } else {
        out = Py_BuildValue("(iisn)", self->rc, self->xrc, self->errmsg != NULL ? self->errmsg : "", self->failed_step);
    }
    job_free(self);
    pthread_mutex_lock(&self->mu);
    self->state = ST_IDLE;
    pthread_mutex_unlock(&self->mu);
    return out;
}

static PyObject *value_object(const Value *v) {
    switch (v->type) {
    case SQLITE_INTEGER: return PyLong_FromLongLong(v->i);
    case SQLITE_FLOAT: return PyFloat_FromDouble(v->d);
    case SQLITE_TEXT: return PyUnicode_DecodeUTF8(v->s, v->n, "replace");
    case SQLITE_BLOB: return PyBytes_FromStringAndSize(v->s, v->n);
    default: Py_RETURN_NONE;
    }
}

static PyObject *Writer_rows(Writer *self, PyObject *unused) {
    if (!self->started || read_state(self) != ST_DONE) {
        PyErr_SetString(PyExc_RuntimeError, "no finished job: rows() comes before result()");
        return NULL;
    }
    PyObject *out = PyList_New((Py_ssize_t)self->nout);
    if (out == NULL)
        return NULL;
    Py_ssize_t r = 0;
    for (OutRow *row = self->out_head; row != NULL; row = row->next, r++) {
        PyObject *t = PyTuple_New((Py_ssize_t)row->ncols);
        if (t == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, r, t);
        for (size_t c = 0; c < row->ncols; c++) {
            PyObject *o = value_object(&row->values[c]);
            if (o == NULL) {
                Py_DECREF(out);
                return NULL;
            }
            PyTuple_SET_ITEM(t, (Py_ssize_t)c, o);
        }
    }
    return out;
}

static void writer_close(Writer *self) {
    if (!self->started || self->closed)
        return;
    self->closed = 1;
    pthread_mutex_lock(&self->mu);
    self->stop = 1;
    pthread_cond_signal(&self->cv);
    pthread_mutex_unlock(&self->mu);
    Py_BEGIN_ALLOW_THREADS
    pthread_join(self->thread, NULL); /* a queued job runs to its end first */
    Py_END_ALLOW_THREADS
    for (size_t k = 0; k < self->ncache; k++) {
        sqlite3_finalize(self->cache[k].stmt);
        free(self->cache[k].sql);
    }
    self->ncache = 0;
    /* the mutex and condition stay: result() still reads the state */
}

static PyObject *Writer_close(Writer *self, PyObject *unused) {
    writer_close(self);
    Py_RETURN_NONE;
}

static void Writer_dealloc(Writer *self) {
    writer_close(self);
    job_free(self);
    free(self->arena); /* the chunk job_free keeps */
    self->arena = NULL;
    if (self->started) {
        pthread_mutex_destroy(&self->mu);
        pthread_cond_destroy(&self->cv);
    }
    Py_CLEAR(self->conn);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Writer_methods[] = {
    {"submit", (PyCFunction)Writer_submit, METH_O,
     "submit(steps): run [(sql, [row, ...] | None), ...] on the thread; the eventfd is signalled when done"},
    {"result", (PyCFunction)Writer_result, METH_NOARGS,
     "result() -> None | (rc, extended_rc, message, step): the finished job's outcome"},
    {"rows", (PyCFunction)Writer_rows, METH_NOARGS,
     "rows() -> [tuple, ...]: the rows the finished job's collecting steps returned, in order (before result())"},
    {"filename", (PyCFunction)Writer_filename, METH_NOARGS, "the connection's main database file"},
    {"close", (PyCFunction)Writer_close, METH_NOARGS,
     "finish a queued job, stop the thread, finalize the prepared statements (before the connection closes)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject WriterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gateway.store._sqlwriter.Writer",
    .tp_basicsize = sizeof(Writer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Writer_init,
    .tp_dealloc = (destructor)Writer_dealloc,
    .tp_methods = Writer_methods,
    .tp_doc = "Runs a write transaction's last statements and COMMIT on a thread without the GIL.",
};

static PyObject *libversion_number(PyObject *mod, PyObject *unused) {
    return PyLong_FromLong(sqlite3_libversion_number());
}

/* Whether the shared object at `path` (the sqlite3 module's, already loaded) resolves the
 * SQLite API to the library this extension is linked to: one copy of SQLite, so that a
 * connection handle of the one is valid for the other. */
static PyObject *same_library(PyObject *mod, PyObject *arg) {
    PyObject *encoded = NULL;
    if (!PyUnicode_FSConverter(arg, &encoded))
        return NULL;
    void *handle = dlopen(PyBytes_AS_STRING(encoded), RTLD_LAZY | RTLD_NOLOAD);
    Py_DECREF(encoded);
    if (handle == NULL)
        Py_RETURN_FALSE;
    void *theirs = dlsym(handle, "sqlite3_libversion_number");
    dlclose(handle);
    return PyBool_FromLong(theirs != NULL && theirs == (void *)sqlite3_libversion_number);
}

/* Registers the WAL-write-gathering VFS (_walvfs.c) with this extension's SQLite; returns
 * its name, for a connection's `vfs=` URI parameter. Only of use when `same_library`. */
static PyObject *register_wal_vfs(PyObject *mod, PyObject *unused) {
    int rc = izh_walvfs_register();
    if (rc != SQLITE_OK) {
        PyErr_Format(PyExc_OSError, "registering the SQLite VFS %s failed: %s", IZH_WALVFS_NAME, sqlite3_errstr(rc));
        return NULL;
    }
    return PyUnicode_FromString(IZH_WALVFS_NAME);
}

static PyMethodDef module_methods[] = {
    {"register_wal_vfs", register_wal_vfs, METH_NOARGS, "registers the WAL-write-gathering VFS; returns its name"},
    {"same_library", same_library, METH_O, "whether the loaded module at this path uses this extension's SQLite"},
    {"libversion_number", libversion_number, METH_NOARGS, "the linked SQLite library's version number"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "gateway.store._sqlwriter", NULL, -1, module_methods,
};

PyMODINIT_FUNC PyInit__sqlwriter(void) {
    if (PyType_Ready(&WriterType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&WriterType);
    if (PyModule_AddObject(m, "Writer", (PyObject *)&WriterType) < 0) {
        Py_DECREF(&WriterType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
