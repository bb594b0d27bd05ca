# Counts the primes below the 32-bit number at the start of memory by trial
# division. Run: bpfkit run examples/prime.asm --mem-hex "e8 03 00 00"
    ldxw %r6, [%r1]       # limit
    mov %r0, 0            # primes found
    mov %r7, 2            # candidate
next:
    jge %r7, %r6, done
    mov %r8, 2            # divisor
try:
    mov %r9, %r8
    mul %r9, %r8
    jgt %r9, %r7, prime   # divisor^2 > candidate: no divisor found
    mov %r9, %r7
    mod %r9, %r8
    jeq %r9, 0, composite
    add %r8, 1
    ja try
prime:
    add %r0, 1
composite:
    add %r7, 1
    ja next
done:
    exit
