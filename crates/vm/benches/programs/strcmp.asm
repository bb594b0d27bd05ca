# strcmp of two NUL-terminated strings at r1+16 and r1+16+[r1+0]: walks
# both a byte at a time until they differ or end. Returns the difference of
# the first differing bytes (a - b, wrapping), or 0 when equal.
ldxdw %r2, [%r1+0]
mov %r3, %r1
add %r3, 16
mov %r4, %r3
add %r4, %r2
loop:
ldxb %r5, [%r3+0]
ldxb %r6, [%r4+0]
jne %r5, %r6, diff
jeq %r5, 0, same
add %r3, 1
add %r4, 1
ja loop
diff:
mov %r0, %r5
sub %r0, %r6
exit
same:
mov %r0, 0
exit
