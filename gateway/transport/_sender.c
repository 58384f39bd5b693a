/* The lean transport's sender thread: socket writes off the event loop's thread.
 *
 * On loopback and on a busy host a websocket write costs ~20 us in the kernel (the TCP
 * path, and on loopback the receiver's input path too), paid on the event loop's one
 * thread with the GIL held. `Sender` runs those writes on a thread of its own that never
 * takes the GIL: the loop thread queues (fd, bytes, connection) jobs with `submit` and
 * collects the results with `drain` when
 * the thread signals the eventfd it was given. A submit wakes the thread only when it
 * sleeps: under load it finds the next jobs queued when it finishes a batch.
 *
 * Rules the Python side (gateway/transport/socket.py, hub.py) keeps, on which this relies:
 * - the fd of a job is the loop side's own dup() of the connection's socket, opened before
 *   its first job and closed only after `drain` returned the last of its jobs, so a socket
 *   the event loop closes (and whose number a new connection may take) is never written
 *   here by number;
 * - a job's bytes object is referenced from `submit` to `drain` (both with the GIL), so the
 *   thread reads an immutable buffer without touching reference counts.
 *
 * Per-connection order: jobs run in submission order. A write that would block (the
 * client reads slower than it is sent to) "diverts" the rest of its job and every later job
 * of that connection, unwritten and in order, back to the loop, which hands them to the
 * transport (uvloop buffers them and waits for the socket to become writable) and stops
 * submitting for that connection until it has none in flight here; `unstall` then clears the
 * connection's diverted state (a control job, so it runs after every earlier job).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { JOB_DATA = 0, JOB_UNSTALL = 1 };
enum { ST_QUEUED = 0, ST_SENT = 1, ST_DIVERTED = 2, ST_FAILED = 3 };

typedef struct {
    PyObject *data; /* bytes, a reference owned from submit to drain; NULL for control jobs */
    const char *buf;
    Py_ssize_t len;
    Py_ssize_t sent;
    uint64_t conn;
    int fd;
    int kind;
    int status;
    int err;
} Job;

typedef struct {
    Job *items;
    size_t len;
    size_t cap;
} JobVec;

static int jobvec_push(JobVec *v, const Job *job) {
    if (v->len == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 256;
        Job *items = realloc(v->items, cap * sizeof(Job));
        if (items == NULL)
            return -1;
        v->items = items;
        v->cap = cap;
    }
    v->items[v->len++] = *job;
    return 0;
}

/* The diverted connections: an open-addressing set of non-zero ids (the thread's own). */
typedef struct {
    uint64_t *keys;
    size_t cap; /* a power of two, or 0 */
    size_t len;
} IdSet;

static size_t idset_slot(uint64_t key, size_t cap) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return (size_t)key & (cap - 1);
}

static int idset_has(const IdSet *s, uint64_t key) {
    if (s->len == 0)
        return 0;
    for (size_t i = idset_slot(key, s->cap);; i = (i + 1) & (s->cap - 1)) {
        if (s->keys[i] == key)
            return 1;
        if (s->keys[i] == 0)
            return 0;
    }
}

static int idset_add(IdSet *s, uint64_t key) {
    if ((s->len + 1) * 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        uint64_t *keys = calloc(cap, sizeof(uint64_t));
        if (keys == NULL)
            return -1;
        for (size_t j = 0; j < s->cap; j++) {
            if (s->keys[j] != 0) {
                size_t i = idset_slot(s->keys[j], cap);
                while (keys[i] != 0)
                    i = (i + 1) & (cap - 1);
                keys[i] = s->keys[j];
            }
        }
        free(s->keys);
        s->keys = keys;
        s->cap = cap;
    }
    size_t i = idset_slot(key, s->cap);
    while (s->keys[i] != 0) {
        if (s->keys[i] == key)
            return 0;
        i = (i + 1) & (s->cap - 1);
    }
    s->keys[i] = key;
    s->len++;
    return 0;
}

static void idset_remove(IdSet *s, uint64_t key) {
    if (s->len == 0)
        return;
    size_t mask = s->cap - 1;
    size_t i = idset_slot(key, s->cap);
    while (s->keys[i] != key) {
        if (s->keys[i] == 0)
            return;
        i = (i + 1) & mask;
    }
    /* backward-shift deletion keeps every probe sequence unbroken */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (s->keys[j] == 0)
            break;
        size_t home = idset_slot(s->keys[j], s->cap);
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            s->keys[i] = s->keys[j];
            i = j;
        }
    }
    s->keys[i] = 0;
    s->len--;
}

typedef struct {
    PyObject_HEAD
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    int started;
    int stopping;
    int sleeping;   /* the thread waits on `wake` */
    int notify_fd;  /* an eventfd: written once per batch of finished jobs */
    JobVec queued;  /* loop → thread, under lock */
    JobVec done;    /* thread → loop, under lock */
    IdSet diverted; /* the thread's own */
    uint64_t batches;
} Sender;

static void run_job(Sender *self, Job *job) {
    if (job->kind == JOB_UNSTALL) {
        idset_remove(&self->diverted, job->conn);
        job->status = ST_SENT;
        return;
    }
    if (idset_has(&self->diverted, job->conn)) {
        job->status = ST_DIVERTED;
        return;
    }
    while (job->sent < job->len) {
        ssize_t n = send(job->fd, job->buf + job->sent, (size_t)(job->len - job->sent), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            job->sent += n;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (idset_add(&self->diverted, job->conn) == 0) {
                job->status = ST_DIVERTED;
            } else {
                job->status = ST_FAILED;
                job->err = ENOMEM;
            }
            return;
        }
        job->status = ST_FAILED;
        job->err = errno;
        return;
    }
    job->status = ST_SENT;
}

static void *sender_main(void *arg) {
    Sender *self = (Sender *)arg;
    /* SCHED_BATCH: a wakeup by `submit` does not preempt the event loop's thread (which
     * holds the GIL) on its core; the writes run on an idle core or when the loop waits. */
    struct sched_param batch = {0};
    pthread_setschedparam(pthread_self(), SCHED_BATCH, &batch);
    JobVec work = {NULL, 0, 0};
    pthread_mutex_lock(&self->lock);
    for (;;) {
        while (self->queued.len == 0 && !self->stopping) {
            self->sleeping = 1;
            pthread_cond_wait(&self->wake, &self->lock);
            self->sleeping = 0;
        }
        if (self->queued.len == 0 && self->stopping)
            break;
        JobVec tmp = self->queued; /* take the whole queue, give it an empty one */
        self->queued = work;
        work = tmp;
        pthread_mutex_unlock(&self->lock);

        for (size_t i = 0; i < work.len; i++)
            run_job(self, &work.items[i]);

        pthread_mutex_lock(&self->lock);
        if (self->done.len == 0) { /* the loop drained everything: hand over the vector as it is */
            JobVec empty = self->done;
            self->done = work;
            work = empty;
        } else {
            size_t i = 0;
            while (i < work.len) {
                if (jobvec_push(&self->done, &work.items[i]) == 0) {
                    i++;
                    continue;
                }
                /* out of memory: wait for the loop to drain (the branch above then needs none) */
                pthread_mutex_unlock(&self->lock);
                usleep(1000);
                pthread_mutex_lock(&self->lock);
                if (self->done.len == 0) {
                    memmove(work.items, work.items + i, (work.len - i) * sizeof(Job));
                    work.len -= i;
                    JobVec empty = self->done;
                    self->done = work;
                    work = empty;
                    break;
                }
            }
        }
        work.len = 0;
        self->batches++;
        pthread_mutex_unlock(&self->lock);
        uint64_t one = 1;
        ssize_t w;
        do {
            w = write(self->notify_fd, &one, sizeof one);
        } while (w < 0 && errno == EINTR);
        pthread_mutex_lock(&self->lock);
    }
    pthread_mutex_unlock(&self->lock);
    free(work.items);
    return NULL;
}

static int Sender_init(Sender *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"notify_fd", NULL};
    int fd;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "i", kwlist, &fd))
        return -1;
    if (self->started) {
        PyErr_SetString(PyExc_RuntimeError, "Sender is already started");
        return -1;
    }
    self->notify_fd = fd;
    int rc = pthread_create(&self->thread, NULL, sender_main, self);
    if (rc != 0) {
        errno = rc;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    self->started = 1;
    return 0;
}

static PyObject *Sender_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    Sender *self = (Sender *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->wake, NULL);
    self->notify_fd = -1;
    return (PyObject *)self;
}

static void stop_thread(Sender *self) {
    if (!self->started)
        return;
    pthread_mutex_lock(&self->lock);
    self->stopping = 1;
    pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    Py_BEGIN_ALLOW_THREADS
    pthread_join(self->thread, NULL);
    Py_END_ALLOW_THREADS
    self->started = 0;
}

static void release_jobs(JobVec *v) {
    for (size_t i = 0; i < v->len; i++)
        Py_XDECREF(v->items[i].data);
    free(v->items);
    v->items = NULL;
    v->len = v->cap = 0;
}

static void Sender_dealloc(Sender *self) {
    stop_thread(self);
    release_jobs(&self->queued);
    release_jobs(&self->done);
    free(self->diverted.keys);
    pthread_mutex_destroy(&self->lock);
    pthread_cond_destroy(&self->wake);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Sender_submit(Sender *self, PyObject *args) {
    int fd;
    PyObject *data;
    unsigned long long conn;
    if (!PyArg_ParseTuple(args, "iSK", &fd, &data, &conn))
        return NULL;
    if (!self->started || self->stopping) {
        PyErr_SetString(PyExc_RuntimeError, "Sender is closed");
        return NULL;
    }
    if (conn == 0) {
        PyErr_SetString(PyExc_ValueError, "connection id 0 is reserved");
        return NULL;
    }
    Job job = {data, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), 0, (uint64_t)conn, fd, JOB_DATA, ST_QUEUED, 0};
    Py_INCREF(data);
    pthread_mutex_lock(&self->lock);
    int rc = jobvec_push(&self->queued, &job);
    if (self->sleeping)
        pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    if (rc != 0) {
        Py_DECREF(data);
        return PyErr_NoMemory();
    }
    Py_RETURN_NONE;
}

static PyObject *Sender_unstall(Sender *self, PyObject *arg) {
    unsigned long long conn = PyLong_AsUnsignedLongLong(arg);
    if (conn == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (!self->started || self->stopping) {
        PyErr_SetString(PyExc_RuntimeError, "Sender is closed");
        return NULL;
    }
    Job job = {NULL, NULL, 0, 0, (uint64_t)conn, -1, JOB_UNSTALL, ST_QUEUED, 0};
    pthread_mutex_lock(&self->lock);
    int rc = jobvec_push(&self->queued, &job);
    if (self->sleeping)
        pthread_cond_signal(&self->wake);
    pthread_mutex_unlock(&self->lock);
    if (rc != 0)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* The finished jobs, in submission order: (conn, nbytes, rest, errno) each; `rest` is None
 * when the job was written whole (or failed), else the unwritten tail; control jobs are
 * not reported. */
static PyObject *Sender_drain(Sender *self, PyObject *Py_UNUSED(ignored)) {
    pthread_mutex_lock(&self->lock);
    JobVec done = self->done;
    self->done.items = NULL;
    self->done.len = self->done.cap = 0;
    pthread_mutex_unlock(&self->lock);

    PyObject *out = PyList_New(0);
    if (out == NULL) {
        release_jobs(&done);
        return NULL;
    }
    for (size_t i = 0; i < done.len; i++) {
        Job *job = &done.items[i];
        if (job->kind != JOB_DATA)
            continue;
        PyObject *rest;
        if (job->status == ST_DIVERTED) {
            if (job->sent == 0) {
                rest = job->data;
                Py_INCREF(rest);
            } else {
                rest = PyBytes_FromStringAndSize(job->buf + job->sent, job->len - job->sent);
            }
        } else {
            rest = Py_None;
            Py_INCREF(rest);
        }
        PyObject *item = rest == NULL ? NULL : Py_BuildValue("(KnNi)", (unsigned long long)job->conn, job->len, rest, job->err);
        if (item == NULL || PyList_Append(out, item) != 0) {
            Py_XDECREF(item);
            Py_DECREF(out);
            release_jobs(&done);
            return NULL;
        }
        Py_DECREF(item);
    }
    release_jobs(&done);
    return out;
}

static PyObject *Sender_close(Sender *self, PyObject *Py_UNUSED(ignored)) {
    stop_thread(self);
    Py_RETURN_NONE;
}

static PyObject *Sender_stats(Sender *self, PyObject *Py_UNUSED(ignored)) {
    pthread_mutex_lock(&self->lock);
    unsigned long long batches = self->batches;
    size_t queued = self->queued.len, done = self->done.len;
    pthread_mutex_unlock(&self->lock);
    return Py_BuildValue("{sKsnsnsi}", "batches", batches, "queued", (Py_ssize_t)queued, "done", (Py_ssize_t)done,
                         "running", self->started && !self->stopping);
}

static PyMethodDef Sender_methods[] = {
    {"submit", (PyCFunction)Sender_submit, METH_VARARGS, "submit(fd, data, conn): queue a write of bytes `data` to `fd`."},
    {"unstall", (PyCFunction)Sender_unstall, METH_O, "unstall(conn): clear `conn`'s diverted state, after its queued jobs."},
    {"drain", (PyCFunction)Sender_drain, METH_NOARGS, "drain() -> [(conn, nbytes, rest, errno)] of the finished jobs."},
    {"close", (PyCFunction)Sender_close, METH_NOARGS, "close(): run what is queued, then stop the thread."},
    {"stats", (PyCFunction)Sender_stats, METH_NOARGS, "stats() -> dict of counters."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject SenderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "gateway.transport._sender.Sender",
    .tp_basicsize = sizeof(Sender),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Socket writes on a thread that never takes the GIL.",
    .tp_new = Sender_new,
    .tp_init = (initproc)Sender_init,
    .tp_dealloc = (destructor)Sender_dealloc,
    .tp_methods = Sender_methods,
};

static struct PyModuleDef sender_module = {
    PyModuleDef_HEAD_INIT, "gateway.transport._sender", "The lean transport's sender thread.", -1, NULL,
};

PyMODINIT_FUNC PyInit__sender(void) {
    if (PyType_Ready(&SenderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&sender_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&SenderType);
    if (PyModule_AddObject(m, "Sender", (PyObject *)&SenderType) < 0) {
        Py_DECREF(&SenderType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
