# Byte-by-byte memcpy: copies [r1+0] bytes from r1+16 to r1+16+len, one
# ldxb/stxb pair per byte through checked (non-stack) pointers. Returns the
# sum of the bytes copied.
ldxdw %r2, [%r1+0]
mov %r3, %r1
add %r3, 16
mov %r4, %r3
add %r4, %r2
mov %r0, 0
jeq %r2, 0, done
loop:
ldxb %r5, [%r3+0]
stxb [%r4+0], %r5
add %r0, %r5
add %r3, 1
add %r4, 1
sub %r2, 1
jne %r2, 0, loop
done:
exit
