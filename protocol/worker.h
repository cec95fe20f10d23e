/* The conversation between plughostd and a plughost-worker process, one
 * per isolated plugin generation, over a socketpair the worker has as fd
 * PH_WORKER_FD. Varlink framing (NUL-terminated JSON, protocol/framer.c);
 * the daemon asks, the worker answers, one message at a time:
 *
 *   {"method":"io.plughost.worker.Start","parameters":{"name":N,
 *     "config":TEXT,"sandbox":{...}}}          with the sealed image as
 *                                              SCM_RIGHTS: sandbox, map, init
 *   {"method":"io.plughost.worker.Call","parameters":{"method":M,
 *     "params":TEXT}}                          -> {"parameters":{"result":TEXT|null}}
 *   {"method":"io.plughost.worker.Stop"}       fini, answer, exit 0
 *
 * A failure is {"error":"io.plughost.worker.Failed","parameters":
 * {"errno":E,"message":M}}. JSON texts travel as strings, so nothing a
 * plugin returns can change the shape of a message. No I/O here. */
#ifndef PH_PROTOCOL_WORKER_H
#define PH_PROTOCOL_WORKER_H

#define PH_WORKER_FD 3
/* The worker's exit status when it has no memory for a request. */
#define PH_WORKER_EXIT_NOMEM 71
#define PH_WORKER_START "io.plughost.worker.Start"
#define PH_WORKER_CALL "io.plughost.worker.Call"
#define PH_WORKER_STOP "io.plughost.worker.Stop"
#define PH_WORKER_FAILED "io.plughost.worker.Failed"

#endif
