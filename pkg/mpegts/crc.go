package mpegts

// crcTable is the table for CRC-32/MPEG-2 (polynomial 0x04C11DB7, initial
// value 0xFFFFFFFF, no reflection, no final XOR), the CRC of PSI sections.
var crcTable = makeCRCTable()

func makeCRCTable() *[256]uint32 {
	var t [256]uint32
	for i := range t {
		c := uint32(i) << 24
		for range 8 {
			if c&0x80000000 != 0 {
				c = c<<1 ^ 0x04C11DB7
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return &t
}

// crc32MPEG2 returns the CRC-32/MPEG-2 of b.
func crc32MPEG2(b []byte) uint32 {
	crc := uint32(0xFFFFFFFF)
	for _, v := range b {
		crc = crc<<8 ^ crcTable[byte(crc>>24)^v]
	}
	return crc
}
