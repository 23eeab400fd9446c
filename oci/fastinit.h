/* The plan of a container init started by fork from the runtime (fastinit.c),
 * laid out by fastinit_linux.go in C memory before the fork: the child only
 * reads it and makes raw system calls. */
#ifndef CRISERVER_FASTINIT_H
#define CRISERVER_FASTINIT_H

#include <stdint.h>

enum { FI_FS = 0, FI_BIND = 1, FI_CGROUP = 2 };

/* A mount under a cgroup mount's tmpfs (one per v1 hierarchy). */
struct fi_sub {
	const char *name; /* directory under the tmpfs */
	const char *src, *fstype, *data;
	unsigned long flags;
	int bind;	  /* bind src, else mount fstype */
	unsigned long remount; /* after a bind: remount flags, 0 = none */
};

struct fi_mount {
	int kind;
	const char *dest; /* absolute, clean, as given (resolved in the root by the child) */
	const char *src, *fstype, *data;
	unsigned long flags;
	int is_proc;	  /* type proc: only at /proc */
	int no_symlink;	  /* proc, sysfs: the destination may not be a symlink */
	int bind_dir;	  /* bind: the source is a directory */
	int bind_rec;	  /* bind: MS_REC */
	unsigned long remount; /* bind: the flags to remount with (besides the locked ones), 0 = none */
	int nprop;
	unsigned long prop[8];
	int has_attr;
	uint64_t attr_set, attr_clr;
	/* FI_CGROUP (v1 layout): a tmpfs, then subs, then attributes. */
	int nsub;
	struct fi_sub *subs;
	int cg_batch;	  /* set cg_attr recursively on the tmpfs and its binds */
	uint64_t cg_attr;
	int cg_ro;	  /* without batch: remount the tmpfs read-only */
};

struct fi_dev {
	const char *path; /* clean, under /dev/ */
	unsigned int mode; /* S_IF* | perm */
	unsigned int perm;
	unsigned long long rdev;
	unsigned int uid, gid;
};

struct fi_rlimit {
	int resource;
	const char *name; /* RLIMIT_NOFILE */
	uint64_t cur, max;
};

struct fi_plan {
	/* fds of the parent the child keeps (all >= 3) */
	int stdio[3];
	int sync_fd, state_fd;
	int ntasks;
	int *tasks;
	int cgroup_fd; /* clone3 CLONE_INTO_CGROUP, or -1 */
	uint64_t clone_flags;
	int new_cgroupns; /* unshare(CLONE_NEWCGROUP) after joining the cgroups */

	const char *hostname, *domainname; /* NULL: leave */
	const char *rootfs;		 /* absolute, host path */
	unsigned long root_prop;	 /* propagation of / before the mounts */
	int nmounts;
	struct fi_mount *mounts;
	int make_devices; /* no bind mount at /dev */
	int ndevs;
	struct fi_dev *devs;
	int kcore_link;
	int nsysctl;
	const char **sysctl_paths, **sysctl_keys, **sysctl_vals;
	int nmasked;
	const char **masked;
	int nreadonly;
	const char **readonly;
	unsigned long final_prop; /* linux.rootfsPropagation after pivot_root, 0 = none */
	int root_readonly;

	int terminal; /* a pty in the container's devpts; its master goes to the parent */
	unsigned short console_rows, console_cols;
	int nrlimits;
	struct fi_rlimit *rlimits;
	unsigned int umask;
	const char *cwd;
	int ncands;
	const char **cands; /* the executable: candidate paths in order */
	const char *arg0;   /* for messages */
	int arg0_has_slash;
	char **argv, **envp;

	uint64_t cap_bounding, cap_eff, cap_perm, cap_inh, cap_amb;
	int last_cap;
	unsigned int uid, gid;
	int ngroups;
	unsigned int *groups;
	int no_new_privs;
	const void *bpf; /* sock_filter[], NULL = no seccomp */
	unsigned int bpf_len;
	unsigned int bpf_flags;

	void *stack_map; /* set by criserver_fastinit_start: the child's stack (CLONE_VM) */
};

/* criserver_fastinit_start clones the init; returns its pid or -errno. p
 * must stay until the init has exec'd or exited: with CLONE_VM the child
 * reads it in the parent's memory. */
long criserver_fastinit_start(struct fi_plan *p);
/* criserver_fastinit_release frees what start allocated, once the child
 * is gone. */
void criserver_fastinit_release(struct fi_plan *p);

#endif
