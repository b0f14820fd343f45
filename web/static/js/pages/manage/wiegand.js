// Wiegand card ids: gatehouse (like Leosac) stores a card as its raw bits, parity included,
// packed most significant bit first into bytes written "aa:bb:cc:dd", plus the number of bits.
// This module turns such a card id into facility code and card number for the standard
// layouts (26-bit H10301, 34-bit H10306, 35-bit Corporate 1000, 37-bit H10304), checking their
// parity bits, and back. It mirrors the Go package gatehouse/modules/reader/wiegand (frame.go);
// web/manage_browser_test.go runs both on the same vectors.

/** The longest frame, in bits. */
export const MAX_BITS = 128;

// Layouts: fields are read from the frame as an unsigned integer whose most significant bit is
// the first bit received. A parity mask covers the parity bit itself; pos is the parity bit's
// 0-based position in the frame; the parity bits are listed in the order encode computes them.
const LAYOUTS = [
  { name: "H10301", bits: 26, facShift: 17n, facBits: 8n, numShift: 1n, numBits: 16n,
    parity: [{ pos: 0, mask: 0x3FFE000n, odd: false }, { pos: 25, mask: 0x0001FFFn, odd: true }] },
  { name: "H10306", bits: 34, facShift: 17n, facBits: 16n, numShift: 1n, numBits: 16n,
    parity: [{ pos: 0, mask: 0x3FFFE0000n, odd: false }, { pos: 33, mask: 0x00001FFFFn, odd: true }] },
  { name: "C1k35", bits: 35, facShift: 21n, facBits: 12n, numShift: 1n, numBits: 20n,
    parity: [
      { pos: 1, mask: 0x3B6DB6DB6n, odd: false },
      { pos: 34, mask: 0x36DB6DB6Dn, odd: true },
      { pos: 0, mask: 0x7FFFFFFFFn, odd: true },
    ] },
  { name: "H10304", bits: 37, facShift: 20n, facBits: 16n, numShift: 1n, numBits: 19n,
    parity: [{ pos: 0, mask: 0x1FFFFC0000n, odd: false }, { pos: 36, mask: 0x000007FFFFn, odd: true }] },
];

/** The known formats: [{name, bits, maxFacility, maxNumber}], shortest first. */
export const FORMATS = LAYOUTS.map((l) => ({
  name: l.name, bits: l.bits,
  maxFacility: Number((1n << l.facBits) - 1n), maxNumber: Number((1n << l.numBits) - 1n),
}));

const CARD_RE = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2})*$/;

function ones(v) {
  let n = 0;
  for (; v > 0n; v >>= 1n) n += Number(v & 1n);
  return n;
}

/**
 * checkCardId returns "" when card is a valid card id for nbBits bits, else why not: hex bytes
 * separated by ':', exactly ceil(nbBits/8) of them, padding bits zero, 1 to MAX_BITS bits.
 */
export function checkCardId(card, nbBits) {
  if (!Number.isInteger(nbBits) || nbBits < 1 || nbBits > MAX_BITS) return `The number of bits must be 1 to ${MAX_BITS}.`;
  if (!CARD_RE.test(card)) return "Card id must have aa:bb:cc:11 format.";
  const need = Math.ceil(nbBits / 8);
  const have = (card.length + 1) / 3;
  if (have !== need) return `Card id must have ${need} bytes for ${nbBits} bits, not ${have}.`;
  const pad = need * 8 - nbBits;
  const last = parseInt(card.slice(-2), 16);
  if (pad > 0 && (last & ((1 << pad) - 1)) !== 0) return `The padding bits after bit ${nbBits} must be zero.`;
  return "";
}

/** frameValue returns the nbBits bits of a card id as a BigInt, first bit most significant. */
function frameValue(card, nbBits) {
  const packed = BigInt("0x" + card.replaceAll(":", ""));
  return packed >> BigInt(Math.ceil(nbBits / 8) * 8 - nbBits);
}

/**
 * decode reads a card id of nbBits bits. It returns {format, facility, number, badParity} for a
 * known layout (format is its name, badParity true when a parity bit does not hold), or
 * {format: "raw"} for any other length. It throws an Error when the card id is malformed.
 */
export function decode(card, nbBits) {
  const why = checkCardId(card, nbBits);
  if (why) throw new Error(why);
  const l = LAYOUTS.find((x) => x.bits === nbBits);
  if (!l) return { format: "raw", facility: null, number: null, badParity: false };
  const v = frameValue(card, nbBits);
  const facility = Number((v >> l.facShift) & ((1n << l.facBits) - 1n));
  const number = Number((v >> l.numShift) & ((1n << l.numBits) - 1n));
  const badParity = l.parity.some((p) => (ones(v & p.mask) % 2 === 1) !== p.odd);
  return { format: l.name, facility, number, badParity };
}

/**
 * encode returns {cardId, nbBits} of a frame of the named format (or bit length) carrying
 * facility and number with every parity bit set. It throws an Error for an unknown format or a
 * value that does not fit.
 */
export function encode(format, facility, number) {
  const l = LAYOUTS.find((x) => x.name === format || x.bits === Number(format));
  if (!l) throw new Error(`Unknown Wiegand format ${format}.`);
  const maxF = (1n << l.facBits) - 1n;
  const maxN = (1n << l.numBits) - 1n;
  if (!Number.isInteger(facility) || facility < 0 || BigInt(facility) > maxF) throw new Error(`Facility code must be 0 to ${maxF} for ${l.name}.`);
  if (!Number.isInteger(number) || number < 0 || BigInt(number) > maxN) throw new Error(`Card number must be 0 to ${maxN} for ${l.name}.`);
  let v = (BigInt(facility) << l.facShift) | (BigInt(number) << l.numShift);
  for (const p of l.parity) {
    const bit = 1n << BigInt(l.bits - 1 - p.pos);
    if ((ones(v & p.mask & ~bit) % 2 === 1) !== p.odd) v |= bit;
  }
  const bytes = Math.ceil(l.bits / 8);
  const packed = v << BigInt(bytes * 8 - l.bits);
  const hex = packed.toString(16).padStart(bytes * 2, "0");
  return { cardId: hex.match(/../g).join(":"), nbBits: l.bits };
}

/**
 * describe returns a one-line human reading of a card: "H10301 · FC 42 · CN 1001",
 * "H10301 · parity error (FC 42 · CN 1001)", "raw 32-bit card", or "" for a malformed id.
 */
export function describe(card, nbBits) {
  let d;
  try {
    d = decode(card, nbBits);
  } catch {
    return "";
  }
  if (d.format === "raw") return `raw ${nbBits}-bit card`;
  const fields = `FC ${d.facility} · CN ${d.number}`;
  return d.badParity ? `${d.format} · parity error (${fields})` : `${d.format} · ${fields}`;
}
