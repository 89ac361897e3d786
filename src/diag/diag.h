/* SPDX-License-Identifier: Apache-2.0 */
/*
 * src/diag: the machine check (numafeed_doctor) and the placement check of
 * a running process (numafeed_verify). They sit above src/pin and src/io
 * and may use both: the doctor probes io_uring through src/io and reads the
 * topology, sysfs and the CUDA runtime through src/pin. Nothing below
 * includes this header.
 */
#ifndef NUMAFEED_DIAG_H
#define NUMAFEED_DIAG_H

#include "pin/pin.h"

/* Copy the caller's options (honouring their size), open the topology they
 * describe and resolve the proc root. `who` names the call in messages. */
int nf__doctor_setup(const char *who, const struct numafeed_doctor_options *in,
                     numafeed_topo **topo, const char **proc_root);

#endif
