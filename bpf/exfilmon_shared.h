/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * exfilmon kernel/userspace boundary.
 *
 * Every struct and constant that crosses between the BPF programs and the
 * daemon lives here and nowhere else. Rules:
 *   - fixed-width __u8/__u16/__u32/__u64 only (the includer provides them:
 *     <linux/types.h> in userspace, <linux/bpf.h> in BPF);
 *   - no implicit padding: every byte is named (hash keys compare all bytes);
 *   - the C++ side pins sizes and offsets with static_assert
 *     (userspace/capture/shared_layout.h).
 * Addresses are 16 bytes; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d).
 * Ports are in host byte order.
 */
#ifndef EXFILMON_SHARED_H
#define EXFILMON_SHARED_H

#define EXF_MAX_TLS_PORTS 16  /* configurable TLS server ports */
#define EXF_HELLO_MAX 16384   /* client payload bytes captured per TCP flow */
#define EXF_HELLO_MAX_SEGS 16 /* client segments emitted per TCP flow */
#define EXF_QUIC_MAX_DGRAMS 4 /* client long-header datagrams per QUIC flow */
/* Payload capacity of a small hello event: the common 517 B padded
 * ClientHello fits. */
#define EXF_CHUNK_SMALL 640
#define EXF_CHUNK_MAX 2048    /* payload capacity of a large hello event */
#define EXF_NON_HELLO_PEEK 16 /* bytes sent when the first payload is not a ClientHello */
#define EXF_FC_SLOTS 1024     /* per-CPU flow cache slots (a power of two) */
#define EXF_FC_SHIFT 54       /* 64 - log2(EXF_FC_SLOTS): index from a 64-bit hash */
#define EXF_TICK_SHIFT 22     /* packet-time ticks (replay): 2^22 ns, about 4.2 ms */
/* Default of [bpf] request_min_bytes: the smallest TCP/UDP payload that
 * counts as a turn of either side (docs/datapath.md, "Requests"). */
#define EXF_REQUEST_MIN_BYTES 46

/* Canonical direction of a flow: the (addr, port) endpoint that compares
 * lower is "lo". Counters in struct exf_flow are indexed by this. */
enum exf_cdir {
	EXF_CDIR_LO_TO_HI = 0,
	EXF_CDIR_HI_TO_LO = 1,
};

/* Which endpoint is the client (struct exf_flow.client). */
enum exf_client_side {
	EXF_CLIENT_UNKNOWN = 0,
	EXF_CLIENT_LO = 1,
	EXF_CLIENT_HI = 2,
};

/* Classification of a flow (struct exf_flow.kind). */
enum exf_flow_kind {
	EXF_KIND_PENDING = 0, /* waiting for the client's first payload */
	EXF_KIND_TLS = 1,     /* TCP TLS flow */
	EXF_KIND_QUIC = 2,    /* UDP QUIC flow (TLS 1.3 inside) */
	EXF_KIND_OTHER = 3,   /* decided: not TLS */
};

/* struct exf_flow.flags */
#define EXF_FF_ISN_KNOWN (1u << 0)  /* client_isn is valid */
#define EXF_FF_HELLO_DONE (1u << 1) /* no more hello events for this flow */
#define EXF_FF_CLOSED (1u << 2)     /* FIN both ways or RST seen */
#define EXF_FF_MIDSTREAM (1u << 3)  /* first packet seen was not a SYN */
#define EXF_FF_TARGET_SET (1u << 4) /* hello_target known (offset 0 seen) */
#define EXF_FF_ISN_EXACT (1u << 5)  /* client_isn taken from the SYN or SYN-ACK */

/* Whose turn it is in a flow's request/response exchange (struct
 * exf_flow.turn). Only payloads of at least request_min_bytes move it; a
 * client payload that moves it from EXF_TURN_SERVER to EXF_TURN_CLIENT is one
 * request (docs/datapath.md, "Requests"). */
enum exf_turn {
	EXF_TURN_HANDSHAKE = 0,  /* the ClientHello was sent: the server's flight is next */
	EXF_TURN_CLIENT_FIN = 1, /* the server's handshake flight was seen: the
	                          * client's next payload ends the handshake */
	EXF_TURN_SERVER = 2,     /* the server spoke: the client's next payload is a request */
	EXF_TURN_CLIENT = 3,     /* a request was counted: the server's answer is next */
};

/* TCP flag bits recorded per canonical direction in exf_flow.tcp_seen:
 * bits 0..7 for lo->hi, 8..15 for hi->lo. */
#define EXF_TCP_SYN 0x01u
#define EXF_TCP_ACK 0x02u
#define EXF_TCP_FIN 0x04u
#define EXF_TCP_RST 0x08u
#define EXF_TCP_SYNACK 0x10u
/* Bit 31 of tcp_seen: the flow's close was counted (set atomically, so that
 * a FIN seen on one CPU and a RST or FIN on another count one close). */
#define EXF_TCP_CLOSE_COUNTED (1u << 31)
/* Bit 30 of tcp_seen: a new connection reuses the 5-tuple and this flow was
 * ended for it (set atomically: one end event however many CPUs see the SYN);
 * its entry is being replaced. */
#define EXF_TCP_REUSED (1u << 30)
/* Bits 16..29 of tcp_seen: the generation of the entry for its 5-tuple. The
 * entry that replaces one ended by reuse carries the next generation, so a
 * CPU still holding the old entry (whose memory the new one may reuse at
 * once) cannot mistake the new connection for the old one. */
#define EXF_TCP_GEN_ONE (1u << 16)
#define EXF_TCP_GEN_MASK (0x3fffu << 16)

struct exf_flow_key {
	__u8 lo_addr[16];
	__u8 hi_addr[16];
	__u16 lo_port;
	__u16 hi_port;
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad[3];
}; /* 40 bytes */

struct exf_flow {
	__u64 first_ns; /* monotonic (or packet time in replay) */
	__u64 last_ns;
	__u64 pkts[2];      /* indexed by enum exf_cdir */
	__u64 bytes[2];     /* IP-level bytes, GSO expanded to wire segments */
	__u32 tcp_seen;     /* EXF_TCP_* bits, see above */
	__u32 client_isn;   /* TCP sequence number of the client's first payload byte */
	__u16 hello_target; /* client payload bytes wanted (0: unknown yet) */
	__u16 hello_contig; /* bytes from offset 0 emitted without a gap */
	/* flags..hello_segs: one aligned 32-bit word, updated atomically
	 * (bpf/lib/datapath.h, "The flow's state word"). */
	__u8 flags;      /* EXF_FF_* */
	__u8 client;     /* enum exf_client_side */
	__u8 kind;       /* enum exf_flow_kind */
	__u8 hello_segs; /* hello events emitted */
	/* The harvest epoch in which the entry was last logged as changed
	 * (struct exf_change_ctl): written by the datapath, not a count. */
	__u32 epoch;
	__u32 turn;     /* enum exf_turn; changed by compare-and-swap */
	__u64 requests; /* client turns: requests (docs/datapath.md) */
};                      /* 80 bytes */

struct exf_client_key {
	__u8 addr[16];
};

/* Per-client totals over that client's TLS and QUIC flows only.
 * in = client to server, out = server to client (the exfiltration side). */
struct exf_client_stats {
	__u64 tls_flows_opened;
	__u64 tls_flows_closed;
	__u64 pkts_in;
	__u64 pkts_out;
	__u64 bytes_in;
	__u64 bytes_out;
	__u64 last_ns;
	__u64 first_ns; /* when the entry was created: set on the creating CPU
	                 * only (the others hold 0), so readers take the max.
	                 * A new value means a new entry (evicted, then seen again). */
	__u32 epoch;    /* this CPU's copy was last logged as changed in this
	                 * harvest epoch (struct exf_change_ctl); not a count */
	__u32 pad;
	__u64 requests; /* requests over the client's flows (struct exf_flow) */
};                      /* 80 bytes, one per CPU */

/*
 * The change log: what the harvest reads instead of the whole tables.
 * Userspace bumps epoch at each harvest. The datapath, on the first change
 * of a flow entry (or of a CPU's copy of a client entry) in an epoch,
 * claims a slot of buffer epoch % EXF_CHG_BUFS (an atomic add on its count)
 * and writes the entry's key there (map exf_changes: EXF_CHG_BUFS buffers of
 * cap keys). A client is logged as a flow key with proto 0 and its address
 * in lo_addr. A count above cap means keys were dropped: that harvest reads
 * the whole tables. Each buffer is read at the two harvests after its epoch
 * (the second for a CPU that read the epoch just before the bump), then
 * emptied (count = 0) before it is written again.
 */
#define EXF_CHG_BUFS 3
#define EXF_CHG_CLIENT 0 /* exf_flow_key.proto of a logged client */
struct exf_change_ctl {
	__u32 epoch; /* never 0 once userspace set it up (entries start at 0) */
	__u32 cap;   /* keys per buffer (set by userspace) */
	__u32 count[EXF_CHG_BUFS];
	__u32 pad;
}; /* 24 bytes */

/*
 * The per-CPU flow cache (map exf_fcache, a PERCPU_ARRAY of EXF_FC_SLOTS).
 * A steady flow (TLS/QUIC with its hello done, or decided not TLS; not
 * closed) is installed in its slot by the slow path; the flow's next
 * packets on that CPU within the same tick, without SYN/FIN/RST or TCP flag
 * bits new to the flow, are only added to the slot's pending counters: no
 * hash-table lookup, no clock read. The first packet of each new tick, or a
 * packet needing the flow (SYN, FIN, RST, ...), takes the slow path, which
 * first moves the slot's pending counts into exf_flows and exf_clients.
 * A flow that goes quiet keeps its last pending counts in the slot until
 * the slot is needed again: readers add every used slot's pending counts to
 * the flow (if still in the table) and, for TLS/QUIC, to its client.
 * A payload that would move the flow's turn (enum exf_turn) is never counted
 * here: the slot knows which directions' payloads leave the turn as it is
 * (quiet), valid while the generation of its index in exf_fc_gen is the one
 * it was installed with (every turn change bumps that generation).
 */
struct exf_fc_slot {
	struct exf_flow_key key;
	__u64 pkts[2]; /* pending, indexed by enum exf_cdir */
	__u64 bytes[2];
	__u64 last_ns;  /* packet time of the last packet counted here (replay),
	                 * or the install time (live: the fast path reads no clock) */
	__u64 tick;     /* the tick the slot is valid for */
	__u32 tcp_seen; /* the flow's tcp_seen when installed */
	__u8 client;    /* enum exf_client_side */
	__u8 kind;      /* enum exf_flow_kind */
	__u8 used;      /* key holds a flow; pending counts are that flow's */
	__u8 quiet;     /* bit d: a payload in direction d leaves the turn as it is */
	__u32 gen;      /* exf_fc_gen[index] when installed */
	__u32 pad;
}; /* 104 bytes */

/* One entry of map exf_fc_gen per flow cache index, a cache line each so
 * that a turn change of one flow does not evict its neighbours' entries
 * from other CPUs' caches. */
struct exf_fc_gen_entry {
	__u32 gen;
	__u32 pad[15];
}; /* 64 bytes */

enum exf_event_type {
	EXF_EV_HELLO = 1,    /* client payload chunk (ClientHello or QUIC Initial) */
	EXF_EV_FLOW_END = 2, /* a TLS/QUIC flow ended; final counters */
};

enum exf_end_reason {
	EXF_END_FIN = 1, /* FIN seen in both directions */
	EXF_END_RST = 2,
	EXF_END_REUSE = 3, /* a new SYN reused the 5-tuple: the old flow ended */
};

struct exf_event_hdr {
	__u16 type;      /* enum exf_event_type */
	__u16 len;       /* hello: payload bytes valid in data[] */
	__u8 kind;       /* enum exf_flow_kind */
	__u8 client;     /* enum exf_client_side */
	__u8 reason;     /* flow end: enum exf_end_reason */
	__u8 was_closed; /* flow end REUSE: an earlier FIN/RST end event was sent */
	__u64 ts_ns;
	struct exf_flow_key key;
}; /* 56 bytes */

struct exf_hello_event {
	struct exf_event_hdr hdr;
	__u32 seq;    /* TCP: absolute sequence number of data[0]; QUIC: datagram index */
	__u32 offset; /* TCP: data[0]'s offset in the client byte stream; QUIC: 0 */
	__u8 data[EXF_CHUNK_MAX]; /* capacity is EXF_CHUNK_SMALL for small events */
};
#define EXF_HELLO_EVENT_HDR_SIZE 64u

struct exf_flow_end_event {
	struct exf_event_hdr hdr;
	struct exf_flow flow;
}; /* 120 bytes */

/* Health counters: a per-CPU array indexed by this enum. Keep
 * exf_counter_names (userspace) in the same order. */
enum exf_counter {
	EXF_C_PACKETS = 0,        /* every packet the program saw (wire segments) */
	EXF_C_BYTES,              /* IP-level bytes of parsed IP packets */
	EXF_C_NOT_IP,             /* ethertype neither IPv4 nor IPv6: passed */
	EXF_C_TRUNC_L2,           /* frame shorter than Ethernet/VLAN headers */
	EXF_C_TRUNC_L3,           /* IP header cut short */
	EXF_C_TRUNC_L4,           /* TCP/UDP header cut short */
	EXF_C_VLAN_TOO_DEEP,      /* more than two VLAN tags */
	EXF_C_BAD_IPV4,           /* IHL < 5 or total length < header */
	EXF_C_BAD_IPV6_EXT,       /* too many / malformed extension headers */
	EXF_C_BAD_TCP,            /* TCP data offset < 5 or beyond IP length */
	EXF_C_BAD_UDP,            /* UDP length shorter than its header */
	EXF_C_FRAGMENT,           /* non-first IP fragment: no ports, not attributed */
	EXF_C_OTHER_L4,           /* neither TCP nor UDP */
	EXF_C_FLOW_NEW,           /* flow entries created (not those replacing an
	                           * entry at a reuse: flows only leave the table
	                           * by LRU eviction otherwise) */
	EXF_C_FLOW_REUSE,         /* 5-tuple reused by a new SYN: entry replaced */
	EXF_C_FLOW_UPDATE_FAIL,   /* flow table insert failed */
	EXF_C_CLIENT_UPDATE_FAIL, /* client table insert failed */
	EXF_C_TLS_FLOWS,          /* flows classified TLS (TCP) */
	EXF_C_QUIC_FLOWS,         /* flows classified QUIC */
	EXF_C_HELLO_EVENTS,       /* hello events submitted */
	EXF_C_END_EVENTS,         /* flow end events submitted */
	EXF_C_RB_FULL,            /* ring buffer reservation failed */
	EXF_C_LOAD_FAIL,          /* bpf_skb_load_bytes failed */
	EXF_C_PULL_FAIL,          /* bpf_skb_pull_data failed */
	EXF_C_CLIENT_NEW,         /* client entries created (minus entries: LRU evictions) */
	EXF_C__MAX,
};

#endif /* EXFILMON_SHARED_H */
