/* A completed awaitable: `await done` gives its value at once, with no coroutine
 * frame, no Future and no turn of the event loop.
 *
 * What the coroutine API's read calls return when a message is already queued
 * (see blazews/asyncio/_queued_py.py, Messages). `await` reaches the value
 * through am_send (PyIter_Send, Python 3.10+): a plain return, no StopIteration
 * raised. The iterator protocol (tracing, `yield from`) and the coroutine methods
 * send/throw/close (asyncio.create_task, wrappers that drive an awaitable by
 * hand) are there too and give the same result, through StopIteration.
 *
 * Like a coroutine, it gives its value once: awaiting it again raises
 * RuntimeError. It holds no reference to anything but its value, so it needs no
 * garbage-collector support.
 */
#ifndef BLAZEWS_DONE_H
#define BLAZEWS_DONE_H

#include <Python.h>

typedef struct {
    PyObject_HEAD
    PyObject *value; /* NULL once given */
} bw_Done;

static PyTypeObject bw_DoneType;

static PyObject *bw_done_new(PyObject *value) {
    bw_Done *self = PyObject_New(bw_Done, &bw_DoneType);
    if (self == NULL) {
        return NULL;
    }
    Py_INCREF(value);
    self->value = value;
    return (PyObject *)self;
}

static void bw_done_dealloc(PyObject *self) {
    Py_XDECREF(((bw_Done *)self)->value);
    PyObject_Free(self);
}

/* The value, handed over (a new reference), or NULL with RuntimeError set. */
static PyObject *bw_done_take(PyObject *self) {
    PyObject *value = ((bw_Done *)self)->value;
    if (value == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited result");
        return NULL;
    }
    ((bw_Done *)self)->value = NULL;
    return value;
}

static PyObject *bw_done_await(PyObject *self) {
    Py_INCREF(self);
    return self;
}

static PySendResult bw_done_am_send(PyObject *self, PyObject *arg, PyObject **result) {
    (void)arg;
    *result = bw_done_take(self);
    return *result == NULL ? PYGEN_ERROR : PYGEN_RETURN;
}

/* StopIteration carrying the value (an instance, so that a tuple stays one). */
static PyObject *bw_done_stop(PyObject *self) {
    PyObject *value = bw_done_take(self);
    if (value == NULL) {
        return NULL;
    }
    PyObject *stop = PyObject_CallOneArg(PyExc_StopIteration, value);
    Py_DECREF(value);
    if (stop != NULL) {
        PyErr_SetObject(PyExc_StopIteration, stop);
        Py_DECREF(stop);
    }
    return NULL;
}

static PyObject *bw_done_send(PyObject *self, PyObject *arg) {
    if (arg != Py_None && ((bw_Done *)self)->value != NULL) {
        PyErr_SetString(PyExc_TypeError, "can't send non-None value to a just-started coroutine");
        return NULL;
    }
    return bw_done_stop(self);
}

/* Raise what throw(typ[, val[, tb]]) was given, as a coroutine that has nothing left
 * to run raises it. Returns NULL, always (an error set). */
static PyObject *bw_raise_thrown(PyObject *args) {
    PyObject *typ, *val = NULL, *tb = NULL;
    if (!PyArg_UnpackTuple(args, "throw", 1, 3, &typ, &val, &tb)) {
        return NULL;
    }
    if (PyExceptionInstance_Check(typ)) {
        PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
    } else if (PyExceptionClass_Check(typ)) {
        PyErr_SetObject(typ, val != NULL ? val : Py_None);
    } else {
        PyErr_SetString(PyExc_TypeError,
                        "exceptions must be classes or instances deriving from BaseException");
    }
    return NULL;
}

static PyObject *bw_done_throw(PyObject *self, PyObject *args) {
    Py_CLEAR(((bw_Done *)self)->value);
    return bw_raise_thrown(args);
}

static PyObject *bw_done_close(PyObject *self, PyObject *unused) {
    (void)unused;
    Py_CLEAR(((bw_Done *)self)->value);
    Py_RETURN_NONE;
}

static PyMethodDef bw_done_methods[] = {
    {"send", (PyCFunction)bw_done_send, METH_O, "Give the value (raise StopIteration with it)."},
    {"throw", (PyCFunction)bw_done_throw, METH_VARARGS, "Drop the value, raise the exception."},
    {"close", (PyCFunction)bw_done_close, METH_NOARGS, "Drop the value."},
    {NULL, NULL, 0, NULL},
};

static PyAsyncMethods bw_done_async = {
    .am_await = bw_done_await,
    .am_send = bw_done_am_send,
};

static PyTypeObject bw_DoneType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "blazews._native._kernels.Done",
    .tp_basicsize = sizeof(bw_Done),
    .tp_dealloc = bw_done_dealloc,
    .tp_as_async = &bw_done_async,
    .tp_flags = Py_TPFLAGS_DEFAULT
#ifdef Py_TPFLAGS_HAVE_AM_SEND
                | Py_TPFLAGS_HAVE_AM_SEND
#endif
    ,
    .tp_doc = "A completed awaitable: await gives its value once.",
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = bw_done_stop,
    .tp_methods = bw_done_methods,
};

/* Ready the type (once, at the kernels' import); return it (a new reference). */
static PyObject *bw_done_type(void) {
    if (PyType_Ready(&bw_DoneType) < 0) {
        return NULL;
    }
    Py_INCREF(&bw_DoneType);
    return (PyObject *)&bw_DoneType;
}

#endif
