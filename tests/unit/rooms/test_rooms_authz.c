/* Unit tests of the rooms authorisation table: every cell of the contract's
 * table, written out here as data (not derived from rooms_authz.c), and the
 * role and action names. */
#include "../../../services/rooms/rooms.h"

#include <criterion/criterion.h>
#include <string.h>

#define RID "0190f5e2-7b1c-7c3d-8e4f-123456789abc"

/* The expected answers, copied from the rooms contract (issue 3, "Roles and
 * the authorisation table"). OK: allowed; FB: 403 forbidden; NF: 404 not_found. */
enum { OK = NT_OK, FB = NT_EFORBIDDEN, NF = NT_ENOTFOUND };

typedef struct {
    const char *action;  /* by name, so the test does not lean on the enum order */
    int pub[4], priv[4]; /* outsider, member, moderator, admin */
} authz_row;

/* clang-format off */
static const authz_row expected[] = {
    /*                    public room:                 private room:
     *                    outsider member mod admin    outsider member mod admin */
    {"read",          {FB, OK, OK, OK},            {NF, OK, OK, OK}},
    {"send",          {FB, OK, OK, OK},            {NF, OK, OK, OK}},
    {"join",          {OK, OK, OK, OK},            {NF, OK, OK, OK}},
    {"leave",         {FB, OK, OK, OK},            {NF, OK, OK, OK}},
    {"invite",        {FB, OK, OK, OK},            {NF, FB, OK, OK}},
    {"update",        {FB, FB, FB, OK},            {NF, FB, FB, OK}},
    {"delete",        {FB, FB, FB, OK},            {NF, FB, FB, OK}},
    {"set_role",      {FB, FB, FB, OK},            {NF, FB, FB, OK}},
    {"remove_member", {FB, FB, OK, OK},            {NF, FB, OK, OK}},
    {"moderate",      {FB, FB, OK, OK},            {NF, FB, OK, OK}},
};
/* clang-format on */

static const rooms_role relations[4] = {ROOMS_OUTSIDER, ROOMS_MEMBER, ROOMS_MODERATOR, ROOMS_ADMIN};
static const char *const relation_names[4] = {"outsider", "member", "moderator", "admin"};

Test(rooms_authz, every_cell_of_the_table)
{
    cr_assert_eq(sizeof(expected) / sizeof(expected[0]), (size_t)ROOMS_ACT__COUNT,
                 "the table covers every action");
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
        rooms_action a;
        cr_assert(rooms_action_parse(expected[i].action, &a), "%s", expected[i].action);
        for (int rel = 0; rel < 4; rel++) {
            for (int priv = 0; priv < 2; priv++) {
                int want = priv ? expected[i].priv[rel] : expected[i].pub[rel];
                char msg[NT_ERRMSG_LEN] = "";
                /* remove_member is asked about a plain member here, as the
                 * handlers ask before they know the target. */
                nt_status got =
                    rooms_authz(a, relations[rel], priv, ROOMS_MEMBER, RID, msg, sizeof(msg));
                cr_assert_eq((int)got, want, "%s by %s in a %s room: got %s, want %s",
                             expected[i].action, relation_names[rel], priv ? "private" : "public",
                             nt_status_str(got), nt_status_str((nt_status)want));
                if (got != NT_OK)
                    cr_assert(msg[0] != '\0', "a refusal explains itself (%s by %s)",
                              expected[i].action, relation_names[rel]);
            }
        }
    }
}

Test(rooms_authz, outsider_of_a_private_room_hears_that_it_does_not_exist)
{
    char msg[NT_ERRMSG_LEN];
    for (int a = 0; a < ROOMS_ACT__COUNT; a++) {
        cr_assert_eq(
            rooms_authz((rooms_action)a, ROOMS_OUTSIDER, true, ROOMS_MEMBER, RID, msg, sizeof(msg)),
            NT_ENOTFOUND);
        /* Word for word what a room that does not exist gets. */
        cr_assert_str_eq(msg, "room " RID " does not exist");
    }
    cr_assert_eq(
        rooms_authz(ROOMS_ACT_READ, ROOMS_OUTSIDER, false, ROOMS_MEMBER, RID, msg, sizeof(msg)),
        NT_EFORBIDDEN);
    cr_assert(strstr(msg, "not a member") != NULL, "%s", msg);
}

Test(rooms_authz, moderators_remove_plain_members_only)
{
    char msg[NT_ERRMSG_LEN];
    struct {
        rooms_role caller, target;
        nt_status want;
    } cases[] = {
        {ROOMS_MODERATOR, ROOMS_MEMBER, NT_OK},
        {ROOMS_MODERATOR, ROOMS_MODERATOR, NT_EFORBIDDEN},
        {ROOMS_MODERATOR, ROOMS_ADMIN, NT_EFORBIDDEN},
        {ROOMS_ADMIN, ROOMS_MEMBER, NT_OK},
        {ROOMS_ADMIN, ROOMS_MODERATOR, NT_OK},
        {ROOMS_ADMIN, ROOMS_ADMIN, NT_OK},
        {ROOMS_MEMBER, ROOMS_MEMBER, NT_EFORBIDDEN},
        {ROOMS_MEMBER, ROOMS_ADMIN, NT_EFORBIDDEN},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int priv = 0; priv < 2; priv++) {
            msg[0] = '\0';
            nt_status got = rooms_authz(ROOMS_ACT_REMOVE_MEMBER, cases[i].caller, priv,
                                        cases[i].target, RID, msg, sizeof(msg));
            cr_assert_eq(got, cases[i].want, "case %zu (%s room)", i, priv ? "private" : "public");
            if (got != NT_OK)
                cr_assert(msg[0] != '\0');
        }
    }
    rooms_authz(ROOMS_ACT_REMOVE_MEMBER, ROOMS_MODERATOR, false, ROOMS_ADMIN, RID, msg,
                sizeof(msg));
    cr_assert(strstr(msg, "moderators may remove plain members only") != NULL, "%s", msg);
}

Test(rooms_authz, target_matters_only_for_remove_member)
{
    char msg[NT_ERRMSG_LEN];
    rooms_role targets[] = {ROOMS_OUTSIDER, ROOMS_MEMBER, ROOMS_MODERATOR, ROOMS_ADMIN};
    for (int a = 0; a < ROOMS_ACT__COUNT; a++) {
        if (a == ROOMS_ACT_REMOVE_MEMBER)
            continue;
        for (int rel = 0; rel < 4; rel++) {
            nt_status first = rooms_authz((rooms_action)a, relations[rel], false, targets[0], RID,
                                          msg, sizeof(msg));
            for (size_t t = 1; t < 4; t++)
                cr_assert_eq(rooms_authz((rooms_action)a, relations[rel], false, targets[t], RID,
                                         msg, sizeof(msg)),
                             first, "action %d relation %d", a, rel);
        }
    }
}

Test(rooms_authz, out_of_range_action_is_refused)
{
    char msg[NT_ERRMSG_LEN];
    cr_assert_eq(
        rooms_authz(ROOMS_ACT__COUNT, ROOMS_ADMIN, false, ROOMS_MEMBER, RID, msg, sizeof(msg)),
        NT_EFORBIDDEN);
    cr_assert_eq(rooms_authz(ROOMS_ACT_READ, (rooms_role)(ROOMS_ADMIN + 1), false, ROOMS_MEMBER,
                             RID, msg, sizeof(msg)),
                 NT_EFORBIDDEN);
}

Test(rooms_authz, messages_fit_a_small_buffer)
{
    char msg[8];
    memset(msg, 'x', sizeof(msg));
    cr_assert_eq(
        rooms_authz(ROOMS_ACT_READ, ROOMS_OUTSIDER, true, ROOMS_MEMBER, RID, msg, sizeof(msg)),
        NT_ENOTFOUND);
    cr_assert_eq(strlen(msg), sizeof(msg) - 1, "truncated and terminated");
}

Test(rooms_authz, role_names_round_trip)
{
    const char *names[] = {"member", "moderator", "admin"};
    rooms_role roles[] = {ROOMS_MEMBER, ROOMS_MODERATOR, ROOMS_ADMIN};
    for (size_t i = 0; i < 3; i++) {
        cr_assert_str_eq(rooms_role_name(roles[i]), names[i]);
        rooms_role r = ROOMS_OUTSIDER;
        cr_assert(rooms_role_parse(names[i], &r), "%s", names[i]);
        cr_assert_eq(r, roles[i]);
    }
    cr_assert_null(rooms_role_name(ROOMS_OUTSIDER), "an outsider has no role");
    cr_assert_null(rooms_role_name((rooms_role)(ROOMS_ADMIN + 1)));
}

Test(rooms_authz, role_parse_rejects_everything_else)
{
    const char *bad[] = {"",       "Admin", "ADMIN",    "admin ",   " admin",   "adm",
                         "admins", "owner", "outsider", "moderato", "member\n", "?"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rooms_role r = ROOMS_MODERATOR;
        cr_assert_not(rooms_role_parse(bad[i], &r), "'%s'", bad[i]);
        cr_assert_eq(r, ROOMS_MODERATOR, "out untouched on failure ('%s')", bad[i]);
    }
    rooms_role r = ROOMS_MODERATOR;
    cr_assert_not(rooms_role_parse(NULL, &r));
    cr_assert_eq(r, ROOMS_MODERATOR);
}

Test(rooms_authz, action_names_round_trip)
{
    /* The names authorize accepts, from the contract. */
    const char *names[] = {"read",   "send",     "join",          "leave",    "invite",
                           "update", "set_role", "remove_member", "moderate", "delete"};
    cr_assert_eq(sizeof(names) / sizeof(names[0]), (size_t)ROOMS_ACT__COUNT);
    bool seen[ROOMS_ACT__COUNT] = {false};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        rooms_action a = ROOMS_ACT__COUNT;
        cr_assert(rooms_action_parse(names[i], &a), "%s", names[i]);
        cr_assert_lt((int)a, ROOMS_ACT__COUNT);
        cr_assert_not(seen[a], "%s maps to a fresh action", names[i]);
        seen[a] = true;
        cr_assert_str_eq(rooms_action_name(a), names[i]);
    }
    cr_assert_str_eq(rooms_action_name(ROOMS_ACT_SET_ROLE), "set_role");
    cr_assert_str_eq(rooms_action_name(ROOMS_ACT_REMOVE_MEMBER), "remove_member");
    cr_assert_str_eq(rooms_action_name(ROOMS_ACT__COUNT), "?");
}

Test(rooms_authz, action_parse_rejects_everything_else)
{
    const char *bad[] = {"",        "READ",   "Read",   "read ",         "set-role",
                         "setrole", "role",   "remove", "kick",          "moderator",
                         "?",       "send\t", "fly",    "remove_members"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rooms_action a = ROOMS_ACT_MODERATE;
        cr_assert_not(rooms_action_parse(bad[i], &a), "'%s'", bad[i]);
        cr_assert_eq(a, ROOMS_ACT_MODERATE, "out untouched on failure ('%s')", bad[i]);
    }
    rooms_action a = ROOMS_ACT_MODERATE;
    cr_assert_not(rooms_action_parse(NULL, &a));
    cr_assert_eq(a, ROOMS_ACT_MODERATE);
}
