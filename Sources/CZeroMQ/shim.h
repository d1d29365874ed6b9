#ifndef CONVOY_CZEROMQ_SHIM_H
#define CONVOY_CZEROMQ_SHIM_H
#include <zmq.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <poll.h>
#include <unistd.h>
#include <errno.h>
#endif
