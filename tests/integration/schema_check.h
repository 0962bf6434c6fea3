/* A small JSON Schema checker for the contract tests: the subset of draft
 * 2020-12 our schemas use (type, enum, const, required, properties,
 * additionalProperties (false, or a schema for the other members),
 * propertyNames, oneOf, items, minItems, maxItems, minLength, maxLength,
 * minimum, maximum, pattern, and $ref to "#/$defs/..." of the same document or to
 * another file of schemas/json as a whole, by name: "message.schema.json"). An
 * unknown keyword fails the check, so a schema never silently asks for more
 * than is verified. */
#ifndef SCHEMA_CHECK_H
#define SCHEMA_CHECK_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* Loads schemas/json/<name> from the repository root; aborts the test when
 * it is missing or not JSON. The caller frees with cJSON_Delete. */
cJSON *schema_load(const char *name);

/* Checks value against schema (root is the document holding $defs; pass the
 * schema itself for a top-level check). On failure writes the JSON path and
 * the reason to err and returns false. */
bool schema_check(const cJSON *root, const cJSON *schema, const cJSON *value, char *err,
                  size_t errlen);

#endif
