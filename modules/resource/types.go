package resource

import "gatehouse/core"

// The credential types as stored, which are their JSON:API types for clients that opted into
// gatehouse's types (core.Session.LeosacTypes is false).
const (
	// TypeRFIDCard is an RFID card: card id and number of bits.
	TypeRFIDCard = "rfid-card"
	// TypePINCode is a PIN code alone.
	TypePINCode = "pin-code"
	// TypeRFIDCardPIN is an RFID card that must be followed by its PIN. Leosac 0.8 has no such
	// type: Leosac-dialect clients see it as an rfid-card whose "pin-required" is true.
	TypeRFIDCardPIN = "rfid-card-pin"
)

// PINRequiredAttr is the attribute of an rfid-card that says, to Leosac-dialect clients, that
// the card must be followed by its PIN (the credential is a card + PIN credential).
const PINRequiredAttr = "pin-required"

// CredentialType returns the JSON:API type under which a credential stored with type t is
// shown to the session: TypeRFIDCard for a card + PIN credential when the session gets only
// Leosac's types, else t itself.
func CredentialType(s *core.Session, t string) string {
	if t == TypeRFIDCardPIN && s.LeosacTypes() {
		return TypeRFIDCard
	}
	return t
}
