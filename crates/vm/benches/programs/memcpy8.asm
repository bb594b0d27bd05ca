# memcpy 8 bytes at a time: copies [r1+0] bytes (a multiple of 8) from
# r1+16 to r1+16+len with ldxdw/stxdw. Returns the xor of the words copied.
ldxdw %r2, [%r1+0]
mov %r3, %r1
add %r3, 16
mov %r4, %r3
add %r4, %r2
rsh %r2, 3
mov %r0, 0
jeq %r2, 0, done
loop:
ldxdw %r5, [%r3+0]
stxdw [%r4+0], %r5
xor %r0, %r5
add %r3, 8
add %r4, 8
sub %r2, 1
jne %r2, 0, loop
done:
exit
