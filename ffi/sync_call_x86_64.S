# long sync_call(struct sync_block *b)
#
# One FFI crossing for a whole synchronous round trip on a SOCK_SEQPACKET
# socket: what took five or six crossings (epoll_ctl DEL, sendmsg, recvmsg
# while spinning, poll, recvmsg, epoll_ctl ADD) each paid on a cold path
# after an idle frame period. Only registers and raw system calls; returns
# what the kernel returned (bytes, or -errno), never touches errno.
# ffi/sync_call.ts holds these bytes and documents the block;
# tests/ffi/sync_call_test.ts re-assembles this file with `as` and compares.
#
# Written as C and compiled with gcc -Os (no stack protector, no CET, no
# PIC, no red zone), kept here as assembly; the C, for reading:
#
#   if (b->epfd >= 0 && b->lock) epoll_ctl(b->epfd, EPOLL_CTL_DEL, fd, 0);
#   if (b->send_hdr) {                       // 0: only wait
#     b->sent = sendmsg(fd, b->send_hdr, MSG_DONTWAIT | MSG_NOSIGNAL);
#     if (b->sent < 0) { b->step = 5; return b->sent; }
#   }
#   for (;;) {                               // spin: non-blocking reads
#     hdr->msg_controllen = controllen;      // the kernel overwrote it
#     n = recvmsg(fd, hdr, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
#     if (n != -EAGAIN) { b->step = 1; goto got; }
#     if (b->spun >= b->spin) break;
#     b->spun++; pause;
#   }
#   pollfds[0].revents = pollfds[1].revents = 0;  // socket, peer's pidfd
#   r = poll(pollfds, 2, b->timeout);
#   if (r < 0) { b->step = 5; return r; }
#   if (pollfds[1].revents) { b->step = 4; return -EAGAIN; }  // peer exited
#   if (r == 0) { b->step = 3; return -EAGAIN; }              // timed out
#   n = recvmsg(fd, hdr, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
#   if (n == -EAGAIN) { b->step = 3; return n; }
#   b->step = 2;
# got:
#   if (n < 0) { b->step = 5; return n; }
#   if (b->seq) b->seq_out = atomic_fetch_add(b->seq, 1);
#   if (b->cookie >= 0 && n >= 16 && !(hdr->msg_flags & (MSG_TRUNC|MSG_CTRUNC))
#       && cookie_of(data) == b->cookie && b->lock) {  // the reply: give back
#     atomic_store(b->lock, 0);
#     if (b->epfd >= 0) epoll_ctl(b->epfd, EPOLL_CTL_ADD, fd, b->add_event);
#     b->released = 1;
#   }
#   return b->result = n;                    // also in the block: a caller
#                                            // through bsearch(3) loses rax
#
# System calls (asm/unistd_64.h): poll 7, sendmsg 46, recvmsg 47,
# epoll_ctl 233; rax = nr, rdi rsi rdx r10 = arguments; the kernel
# clobbers rcx and r11 only. r8 holds the block throughout.
	.text
	.globl	sync_call
sync_call:
	pushq	%r15
	xorl	%eax, %eax
	xorl	%edx, %edx
	movq	%rdi, %r8
	pushq	%r14
	pushq	%r13
	pushq	%r12
	pushq	%rbp
	pushq	%rbx
	movq	32(%rdi), %rbx
	movq	8(%rdi), %rbp
	movq	40(%rbx), %r14
	movq	%rax, 96(%rdi)
	movq	%rax, 112(%rdi)
	movq	$-1, 120(%rdi)
	movq	%rdx, 128(%rdi)
	movq	(%rdi), %rdi
	testq	%rdi, %rdi
	js	.L2
	cmpq	$0, 72(%r8)
	je	.L2
	xorl	%r10d, %r10d
	movl	$233, %eax
	movl	$2, %esi
	movq	%rbp, %rdx
	syscall
.L2:
	movq	24(%r8), %rsi
	testq	%rsi, %rsi
	je	.L3
	xorl	%r10d, %r10d
	movl	$46, %eax
	movl	$16448, %edx
	movq	%rbp, %rdi
	syscall
	movq	%rax, 96(%r8)
	movq	%rax, %r9
	testq	%rax, %rax
	js	.L34
.L3:
	movq	40(%r8), %r15
	movl	$47, %r12d
	movl	$1073741888, %r13d
.L7:
	movq	%r14, 40(%rbx)
	xorl	%r10d, %r10d
	movq	%r12, %rax
	movq	%rbp, %rdi
	movq	%rbx, %rsi
	movq	%r13, %rdx
	syscall
	cmpq	$-11, %rax
	jne	.L16
	movq	112(%r8), %rax
	cmpq	%rax, %r15
	jle	.L6
	incq	%rax
	movq	%rax, 112(%r8)
	pause
	jmp	.L7
.L6:
	movq	56(%r8), %rdi
	movq	48(%r8), %rdx
	xorl	%r10d, %r10d
	movl	$7, %eax
	movl	$2, %esi
	movw	$0, 6(%rdi)
	movw	$0, 14(%rdi)
	syscall
	movq	%rax, %r9
	testq	%rax, %rax
	js	.L34
	cmpw	$0, 14(%rdi)
	jne	.L17
	testq	%rax, %rax
	jne	.L10
.L11:
	movl	$3, %eax
	jmp	.L9
.L10:
	movq	%r14, 40(%rbx)
	xorl	%r10d, %r10d
	movq	%r12, %rax
	movq	%rbp, %rdi
	movq	%rbx, %rsi
	movq	%r13, %rdx
	syscall
	movq	%rax, %r9
	movl	$2, %eax
	cmpq	$-11, %r9
	jne	.L5
	jmp	.L11
.L16:
	movq	%rax, %r9
	movl	$1, %eax
.L5:
	movq	%rax, 104(%r8)
	testq	%r9, %r9
	jns	.L12
.L34:
	movq	$5, 104(%r8)
	jmp	.L4
.L12:
	movq	80(%r8), %rax
	testq	%rax, %rax
	je	.L13
	movl	$1, %edx
	lock xaddl	%edx, (%rax)
	movslq	%edx, %rax
	movq	%rax, 120(%r8)
.L13:
	movq	64(%r8), %rdx
	cmpq	$15, %r9
	jle	.L4
	testq	%rdx, %rdx
	js	.L4
	movl	48(%rbx), %eax
	andl	$40, %eax
	jne	.L4
	movq	16(%rbx), %rcx
	movq	(%rcx), %rcx
	cmpl	%edx, 12(%rcx)
	jne	.L4
	movq	72(%r8), %rdx
	testq	%rdx, %rdx
	je	.L4
	xchgl	(%rdx), %eax
	movq	(%r8), %rdi
	testq	%rdi, %rdi
	js	.L15
	movq	88(%r8), %r10
	movl	$233, %eax
	movl	$1, %esi
	movq	%rbp, %rdx
	syscall
.L15:
	movq	$1, 128(%r8)
	jmp	.L4
.L17:
	movl	$4, %eax
.L9:
	movq	%rax, 104(%r8)
	movq	$-11, %r9
.L4:
	popq	%rbx
	movq	%r9, %rax
	popq	%rbp
	movq	%r9, 136(%r8)
	popq	%r12
	popq	%r13
	popq	%r14
	popq	%r15
	ret
