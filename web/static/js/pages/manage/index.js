// index.js — the management pages, in navigation order. app.js imports this list and adds the
// pages a caller's rank may see to the navigation.

import people from "./people.js";
import groups from "./groups.js";
import credentials from "./credentials.js";
import schedules from "./schedules.js";
import doors from "./doors.js";
import zones from "./zones.js";
import readers from "./readers.js";
import tokens from "./tokens.js";
import certificates from "./certs.js";

export default [people, groups, credentials, schedules, doors, zones, readers, tokens, certificates];
