package media

// G.711 (ITU-T G.711 / RFC 3551 §4.5.14) with lookup tables.
//
// The tables are computed once when the program starts and never written again: the
// encoders index a 64 Ki table by the 16-bit sample, the decoders a 256-entry table,
// and PCMU↔PCMA transcoding maps a byte to a byte (through the linear value, which is
// what the G.711 transcoding tables encode).

var (
	ulawDecodeTable = buildDecodeTable(ulawDecode)
	alawDecodeTable = buildDecodeTable(alawDecode)
	ulawEncodeTable = buildEncodeTable(ulawEncode)
	alawEncodeTable = buildEncodeTable(alawEncode)
	ulawToAlawTable = buildTranscodeTable(ulawDecode, alawEncode)
	alawToUlawTable = buildTranscodeTable(alawDecode, ulawEncode)
)

// EncodeUlaw encodes one linear sample to μ-law.
func EncodeUlaw(s int16) byte { return ulawEncodeTable[uint16(s)] }

// DecodeUlaw decodes one μ-law byte.
func DecodeUlaw(b byte) int16 { return ulawDecodeTable[b] }

// EncodeAlaw encodes one linear sample to A-law.
func EncodeAlaw(s int16) byte { return alawEncodeTable[uint16(s)] }

// DecodeAlaw decodes one A-law byte.
func DecodeAlaw(b byte) int16 { return alawDecodeTable[b] }

// UlawToAlaw transcodes one PCMU byte to PCMA.
func UlawToAlaw(b byte) byte { return ulawToAlawTable[b] }

// AlawToUlaw transcodes one PCMA byte to PCMU.
func AlawToUlaw(b byte) byte { return alawToUlawTable[b] }

// Encode writes the G.711 encoding of src for codec c into dst and returns the
// number of bytes written (min(len(dst), len(src))). Unknown codecs encode as PCMU.
func Encode(c Codec, dst []byte, src []int16) int {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	table := &ulawEncodeTable
	if c.isAlaw() {
		table = &alawEncodeTable
	}
	for i, s := range src {
		dst[i] = table[uint16(s)]
	}
	return n
}

// Decode writes the linear samples of the G.711 bytes src for codec c into dst and
// returns the number of samples written. Unknown codecs decode as PCMU.
func Decode(c Codec, dst []int16, src []byte) int {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	table := &ulawDecodeTable
	if c.isAlaw() {
		table = &alawDecodeTable
	}
	for i, b := range src {
		dst[i] = table[b]
	}
	return n
}

// Transcode converts G.711 payload src from codec from to codec to into dst (which
// may be src itself) and returns the number of bytes written. Identical codecs copy.
func Transcode(dst, src []byte, from, to Codec) int {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	switch {
	case from.isAlaw() == to.isAlaw():
		copy(dst, src)
	case !from.isAlaw():
		for i, b := range src {
			dst[i] = ulawToAlawTable[b]
		}
	default:
		for i, b := range src {
			dst[i] = alawToUlawTable[b]
		}
	}
	return n
}

// silenceByte is the encoding of a zero sample (0xFF for μ-law, 0xD5 for A-law).
func silenceByte(c Codec) byte {
	if c.isAlaw() {
		return alawEncodeTable[0]
	}
	return ulawEncodeTable[0]
}

func buildDecodeTable(dec func(byte) int16) (t [256]int16) {
	for i := range t {
		t[i] = dec(byte(i))
	}
	return t
}

func buildEncodeTable(enc func(int16) byte) (t [65536]byte) {
	for i := range t {
		t[i] = enc(int16(uint16(i)))
	}
	return t
}

func buildTranscodeTable(dec func(byte) int16, enc func(int16) byte) (t [256]byte) {
	for i := range t {
		t[i] = enc(dec(byte(i)))
	}
	return t
}

// ulawEncode is the reference μ-law encoder (G.711 §3, bias 0x84, clip 32635).
func ulawEncode(s int16) byte {
	const bias, clip = 0x84, 32635
	x := int32(s)
	sign := byte(0)
	if x < 0 {
		x = -x
		sign = 0x80
	}
	if x > clip {
		x = clip
	}
	x += bias
	exp := byte(7)
	for mask := int32(0x4000); x&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := byte(x>>(exp+3)) & 0x0F
	return ^(sign | exp<<4 | mant)
}

// ulawDecode is the reference μ-law decoder.
func ulawDecode(b byte) int16 {
	b = ^b
	exp := (b >> 4) & 0x07
	mant := int32(b & 0x0F)
	x := ((mant << 3) + 0x84) << exp
	x -= 0x84
	if b&0x80 != 0 {
		return int16(-x)
	}
	return int16(x)
}

// alawEncode is the reference A-law encoder (G.711 §2, even bits inverted with 0x55).
func alawEncode(s int16) byte {
	x := int32(s) >> 3 // A-law works on 13-bit magnitudes
	sign := byte(0x80)
	if x < 0 {
		x = -x - 1
		sign = 0
	}
	if x > 0xFFF {
		x = 0xFFF
	}
	var out byte
	if x < 32 {
		out = byte(x >> 1)
	} else {
		exp := byte(1)
		for v := x >> 5; v > 1; v >>= 1 {
			exp++
		}
		out = exp<<4 | byte(x>>exp)&0x0F
	}
	return (out | sign) ^ 0x55
}

// alawDecode is the reference A-law decoder.
func alawDecode(b byte) int16 {
	b ^= 0x55
	exp := int32(b>>4) & 0x07
	mant := int32(b & 0x0F)
	var x int32
	if exp == 0 {
		x = mant<<4 + 8
	} else {
		x = (mant<<4 + 0x108) << (exp - 1)
	}
	if b&0x80 == 0 {
		return int16(-x)
	}
	return int16(x)
}
