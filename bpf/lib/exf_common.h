/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* Types and byte-order helpers shared by the BPF build and the userspace
 * build of the same parser sources. */
#ifndef EXF_LIB_COMMON_H
#define EXF_LIB_COMMON_H

#if defined(__bpf__)
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#define exf_ntohs(x) bpf_ntohs(x)
#define exf_ntohl(x) bpf_ntohl(x)
#define exf_htonl(x) bpf_htonl(x)
#else
#include <linux/types.h>
#include <arpa/inet.h>
#include <string.h>
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#define exf_ntohs(x) ntohs(x)
#define exf_ntohl(x) ntohl(x)
#define exf_htonl(x) htonl(x)
#endif

#include "../exfilmon_shared.h"

#endif /* EXF_LIB_COMMON_H */
