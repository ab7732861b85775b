/* The DHT's local stores (sans-I/O, time as an argument): value records and provider records,
 * both bounded, plus record validation by namespace.
 *
 * Records: key -> (value, received time), expiring record_ttl_ms after they were stored (go:
 * MaxRecordAge 36 h); at most max_records records and max_record_bytes bytes in total (a PUT
 * that would exceed them is refused with CP2P_EFULL and counted, after expired ones are
 * purged). Provider records: key -> up to max_providers_per_key providers (peer ID, expiry),
 * provider_ttl_ms (go: 48 h), at most max_provider_keys keys; re-adding a provider refreshes
 * its expiry; a full key replaces its oldest provider.
 *
 * Validation: the key's namespace is the text between the first two '/' ("/pk/<id>" -> "pk").
 * A namespace has a validator (validate, select). Built in: "pk" (the value is a protobuf
 * PublicKey whose peer ID is the key's <id> bytes, spec "Value routing"). Keys without a
 * registered namespace are refused (CP2P_ENOTSUP), as go and js do. */
#ifndef CP2P_PROTOCOLS_KAD_STORE_H
#define CP2P_PROTOCOLS_KAD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cp2p/peer_id.h>

typedef struct cp2p__kad_store_config {
    size_t max_records;          /* 10,000 */
    size_t max_record_bytes;     /* 64 MiB over all values */
    uint64_t record_ttl_ms;      /* 36 h */
    size_t max_provider_keys;    /* 10,000 */
    size_t max_providers_per_key;/* 20 */
    uint64_t provider_ttl_ms;    /* 48 h */
} cp2p__kad_store_config;

void cp2p__kad_store_config_default(cp2p__kad_store_config *c);

/* Return 0 when value is valid for key, a negative cp2p_err otherwise. */
typedef int (*cp2p__kad_validate_fn)(void *ud, const uint8_t *key, size_t key_len,
                                     const uint8_t *value, size_t value_len);
/* Index (0..n-1) of the best of n values (all already valid), or a negative cp2p_err. */
typedef int (*cp2p__kad_select_fn)(void *ud, const uint8_t *key, size_t key_len,
                                   const uint8_t *const *values, const size_t *lens, size_t n);

typedef struct cp2p__kad_store cp2p__kad_store;

CP2P_NODISCARD int cp2p__kad_store_new(const cp2p__kad_store_config *cfg,
                                       cp2p__kad_store **out);
void cp2p__kad_store_free(cp2p__kad_store *s);

/* Register (or replace) the validator of namespace `ns` (copied, no '/'). select may be NULL
 * (then the first value wins). Returns 0, CP2P_EINVAL, CP2P_EFULL (CP2P_KAD_MAX_NAMESPACES),
 * CP2P_ENOMEM. The "pk" namespace is registered by cp2p__kad_store_new. */
CP2P_NODISCARD int cp2p__kad_store_add_validator(cp2p__kad_store *s, const char *ns,
                                                 cp2p__kad_validate_fn validate,
                                                 cp2p__kad_select_fn select, void *ud);
/* Validate a record: 0, CP2P_ELIMIT (key over CP2P_KAD_MAX_KEY or value over
 * CP2P_KAD_MAX_VALUE), CP2P_ENOTSUP (no validator for its namespace, or no namespace), or the
 * validator's error ("pk": CP2P_EPROTO, CP2P_ENOMEM). */
CP2P_NODISCARD int cp2p__kad_store_validate(const cp2p__kad_store *s, const uint8_t *key,
                                            size_t key_len, const uint8_t *value,
                                            size_t value_len);
/* Index of the best of n values by the key's namespace's select (0 without one), or an error
 * (CP2P_ENOTSUP). */
CP2P_NODISCARD int cp2p__kad_store_select(const cp2p__kad_store *s, const uint8_t *key,
                                          size_t key_len, const uint8_t *const *values,
                                          const size_t *lens, size_t n);

/* Store a record after validation; an existing record of the key is replaced only when select
 * prefers the new value (else CP2P_ESTATE: "we have a better one"). select sees {new, existing}
 * in that order, as go-libp2p-kad-dht's handlePutValue, so a first-wins select replaces; the
 * same value again only refreshes the received time. Returns 0, the validation's error,
 * CP2P_ESTATE, CP2P_EFULL, CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__kad_store_put(cp2p__kad_store *s, const uint8_t *key, size_t key_len,
                                       const uint8_t *value, size_t value_len,
                                       uint64_t now_ms);
/* The unexpired record of key: borrowed pointers valid until the next store call. Returns 0
 * or CP2P_ENOENT. */
CP2P_NODISCARD int cp2p__kad_store_get(cp2p__kad_store *s, const uint8_t *key, size_t key_len,
                                       uint64_t now_ms, const uint8_t **value,
                                       size_t *value_len, uint64_t *received_ms);

/* Add (or refresh) provider p of key. Returns 0, CP2P_EINVAL (empty key, key over
 * CP2P_KAD_MAX_KEY, empty peer ID), CP2P_EFULL (max_provider_keys), CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__kad_store_add_provider(cp2p__kad_store *s, const uint8_t *key,
                                                size_t key_len, const cp2p_peer_id *p,
                                                uint64_t now_ms);
/* Up to max unexpired providers of key, most recently added first, copied into out. */
size_t cp2p__kad_store_providers(cp2p__kad_store *s, const uint8_t *key, size_t key_len,
                                 uint64_t now_ms, cp2p_peer_id *out, size_t max);
/* Drop expired records and providers (call periodically, e.g. every minute). */
void cp2p__kad_store_purge(cp2p__kad_store *s, uint64_t now_ms);

typedef struct cp2p__kad_store_stats {
    uint64_t records, record_bytes, provider_keys, providers;
    uint64_t puts_refused_full, puts_refused_invalid, providers_refused_full, expired;
} cp2p__kad_store_stats;
void cp2p__kad_store_stats_get(const cp2p__kad_store *s, cp2p__kad_store_stats *out);

#endif
