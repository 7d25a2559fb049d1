/**
 * The hostile-client suite against the raw engine (see `_hostile.ts`). Every bound is stated here: RSS growth in MB
 * over the server's baseline after each attack.
 *
 * @module
 */

import { hostileSuite } from "./_hostile.ts";

hostileSuite("raw", { quiet: 24, pingFlood: 32, fragments: 64, bodyless: 48 });
