package core

// Version is gatehouse's version, reported by `gatehouse version`, get_leosac_version and
// /healthz.
const Version = "0.1.0"
