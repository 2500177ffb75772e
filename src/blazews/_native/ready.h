/* A read without a coroutine: what recv(), read_message(), read_message_into() and
 * `async for` return (see blazews/asyncio/_queued_py.py).
 *
 * It behaves as the coroutine it stands for, step for step, without being one: the
 * message is taken at a step (await, send(None), a task's step), never at the call.
 * So a read dropped unawaited, or whose task is cancelled before it ran
 * (asyncio.wait_for(conn.recv(), 0) on Python 3.11), takes nothing: exactly as with
 * a coroutine.
 *
 * A step calls take(owner, arg): a value (not None) is the result, given through
 * am_send as a plain return (no coroutine frame, no Future, no turn of the loop, no
 * StopIteration). None: nothing to take now. Then block(owner, arg) (if there is
 * one) gives the future that the next message completes (marked as a blocking
 * future, as Future.__await__ marks it), which the step yields to the task, as
 * `await future` does; the task's next step takes again. Where block gives None
 * (a timeout to keep, a payload the slow path must copy), or there is no block,
 * wait(owner, arg) gives the coroutine that does it all, and every step from
 * there on is that coroutine's (send, throw and close are handed to it). A throw
 * before that raises what is thrown (a cancelled task: the future it waited on is
 * cancelled by the task, as for a coroutine).
 *
 * Garbage collection: until it waits, a Ready refers only to its owner (the
 * connection) and arg, and nothing refers back to it but its awaiter, so it is not
 * tracked (a read of a queued message costs no more than a Done). Once it waits
 * (a future yielded to a task, or a coroutine it hands its steps to) it may sit in
 * a cycle (task -> Ready -> connection -> future -> callbacks -> task), and it is
 * tracked from then on.
 */
#ifndef BLAZEWS_READY_H
#define BLAZEWS_READY_H

#include <Python.h>

#include "done.h" /* bw_raise_thrown */

typedef PyObject *(*bw_ready_fn)(PyObject *owner, PyObject *arg);

typedef struct {
    PyObject_HEAD
    PyObject *owner; /* NULL once finished */
    PyObject *arg;
    PyObject *inner; /* the waiting coroutine, once delegated */
    bw_ready_fn take;
    bw_ready_fn block; /* may be NULL */
    bw_ready_fn wait;
    int started;
} bw_Ready;

static PyTypeObject bw_ReadyType;

static PyObject *bw_ready_new(PyObject *owner, PyObject *arg, bw_ready_fn take, bw_ready_fn block,
                              bw_ready_fn wait) {
    bw_Ready *self = PyObject_GC_New(bw_Ready, &bw_ReadyType);
    if (self == NULL) {
        return NULL;
    }
    Py_INCREF(owner);
    Py_INCREF(arg);
    self->owner = owner;
    self->arg = arg;
    self->inner = NULL;
    self->take = take;
    self->block = block;
    self->wait = wait;
    self->started = 0;
    return (PyObject *)self;
}

static int bw_ready_traverse(PyObject *self, visitproc visit, void *arg) {
    Py_VISIT(((bw_Ready *)self)->owner);
    Py_VISIT(((bw_Ready *)self)->arg);
    Py_VISIT(((bw_Ready *)self)->inner);
    return 0;
}

/* Finished: let go of everything. */
static int bw_ready_clear(PyObject *self) {
    Py_CLEAR(((bw_Ready *)self)->owner);
    Py_CLEAR(((bw_Ready *)self)->arg);
    Py_CLEAR(((bw_Ready *)self)->inner);
    return 0;
}

static void bw_ready_dealloc(PyObject *self) {
    PyObject_GC_UnTrack(self);
    bw_ready_clear(self);
    PyObject_GC_Del(self);
}

static PyObject *bw_ready_await(PyObject *self) {
    Py_INCREF(self);
    return self;
}

static void bw_ready_track(PyObject *self) {
    if (!PyObject_GC_IsTracked(self)) {
        PyObject_GC_Track(self);
    }
}

/* A step of its own (not delegated): 1 with the value in *result (finished), 2 with
 * a future to yield in *result, 0 with self->inner set up (delegate from now on),
 * -1 with an error set (finished). */
static int bw_ready_own(bw_Ready *self, PyObject **result) {
    PyObject *value = self->take(self->owner, self->arg);
    if (value == NULL) {
        bw_ready_clear((PyObject *)self);
        return -1;
    }
    if (value != Py_None) {
        bw_ready_clear((PyObject *)self);
        *result = value;
        return 1;
    }
    Py_DECREF(value);
    if (self->block != NULL) {
        PyObject *future = self->block(self->owner, self->arg);
        if (future == NULL) {
            bw_ready_clear((PyObject *)self);
            return -1;
        }
        if (future != Py_None) {
            bw_ready_track((PyObject *)self);
            *result = future;
            return 2;
        }
        Py_DECREF(future);
    }
    PyObject *inner = self->wait(self->owner, self->arg);
    if (inner == NULL) {
        bw_ready_clear((PyObject *)self);
        return -1;
    }
    self->inner = inner;
    bw_ready_track((PyObject *)self);
    return 0;
}

static PySendResult bw_ready_am_send(PyObject *op, PyObject *arg, PyObject **result) {
    bw_Ready *self = (bw_Ready *)op;
    *result = NULL;
    if (self->inner == NULL) {
        if (self->owner == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
            return PYGEN_ERROR;
        }
        if (!self->started && arg != Py_None) { /* refused, as a coroutine's */
            PyErr_SetString(PyExc_TypeError,
                            "can't send non-None value to a just-started coroutine");
            return PYGEN_ERROR;
        }
        self->started = 1;
        switch (bw_ready_own(self, result)) {
        case 1:
            return PYGEN_RETURN;
        case 2:
            return PYGEN_NEXT;
        case -1:
            return PYGEN_ERROR;
        }
        arg = Py_None; /* the coroutine's first step */
    }
    PySendResult r = PyIter_Send(self->inner, arg, result);
    if (r != PYGEN_NEXT) {
        bw_ready_clear(op);
    }
    return r;
}

/* A step as the iterator protocol and send() give it: a yielded value, or NULL with
 * StopIteration carrying the result (an instance, so that a tuple stays one). */
static PyObject *bw_ready_step(PyObject *self, PyObject *arg) {
    PyObject *result;
    PySendResult r = bw_ready_am_send(self, arg, &result);
    if (r != PYGEN_RETURN) {
        return result; /* yielded, or NULL with the error set */
    }
    PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, result);
    Py_DECREF(result);
    if (stop != NULL) {
        PyErr_SetObject(PyExc_StopIteration, stop);
        Py_DECREF(stop);
    }
    return NULL;
}

static PyObject *bw_ready_iternext(PyObject *self) {
    return bw_ready_step(self, Py_None);
}

static PyObject *bw_ready_throw(PyObject *op, PyObject *args) {
    bw_Ready *self = (bw_Ready *)op;
    if (self->inner != NULL) {
        PyObject *throw = PyObject_GetAttrString(self->inner, "throw");
        if (throw == NULL) {
            bw_ready_clear(op);
            return NULL;
        }
        PyObject *yielded = PyObject_Call(throw, args, NULL);
        Py_DECREF(throw);
        if (yielded == NULL) {
            bw_ready_clear(op);
        }
        return yielded;
    }
    /* Not started, waiting on a future, or finished: nothing was taken; raise what
     * was thrown. */
    bw_ready_clear(op);
    return bw_raise_thrown(args);
}

static PyObject *bw_ready_close(PyObject *op, PyObject *unused) {
    (void)unused;
    bw_Ready *self = (bw_Ready *)op;
    PyObject *inner = self->inner;
    if (inner == NULL) {
        bw_ready_clear(op);
        Py_RETURN_NONE;
    }
    Py_INCREF(inner);
    bw_ready_clear(op);
    PyObject *r = PyObject_CallMethod(inner, "close", NULL);
    Py_DECREF(inner);
    return r;
}

static PyMethodDef bw_ready_methods[] = {
    {"send", (PyCFunction)bw_ready_step, METH_O, "Take a step, as a coroutine's send()."},
    {"throw", (PyCFunction)bw_ready_throw, METH_VARARGS,
     "Raise the exception where the read waits (before its first step: nothing is taken)."},
    {"close", (PyCFunction)bw_ready_close, METH_NOARGS, "Stop the read; nothing more is taken."},
    {NULL, NULL, 0, NULL},
};

static PyAsyncMethods bw_ready_async = {
    .am_await = bw_ready_await,
    .am_send = bw_ready_am_send,
};

static PyTypeObject bw_ReadyType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "blazews._native._kernels.Ready",
    .tp_basicsize = sizeof(bw_Ready),
    .tp_dealloc = bw_ready_dealloc,
    .tp_as_async = &bw_ready_async,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC
#ifdef Py_TPFLAGS_HAVE_AM_SEND
                | Py_TPFLAGS_HAVE_AM_SEND
#endif
    ,
    .tp_doc = "A read without a coroutine: takes its message at a step, as the "
              "coroutine it stands for would.",
    .tp_traverse = bw_ready_traverse,
    .tp_clear = bw_ready_clear,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = bw_ready_iternext,
    .tp_methods = bw_ready_methods,
};

/* Ready the type (once, at the kernels' import); return it (a new reference). */
static PyObject *bw_ready_type(void) {
    if (PyType_Ready(&bw_ReadyType) < 0) {
        return NULL;
    }
    Py_INCREF(&bw_ReadyType);
    return (PyObject *)&bw_ReadyType;
}

#endif
