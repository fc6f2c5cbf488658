import unittest

import quoll

from ._support import ServerTest, client, unique


class WorkspaceTests(ServerTest):
    def test_the_seeds_helper_finds_or_creates_a_workspace_by_name_method(self) -> None:
        wl = client()
        name = unique("seedws")

        def get_workspace(name: str) -> quoll.Workspace:
            workspace = None
            for ws in wl.list_workspaces():
                if ws.name() == name:
                    workspace = ws
            if workspace is None:
                workspace = wl.create_workspace(name)
            return workspace

        created = get_workspace(name)
        again = get_workspace(name)
        self.assertEqual(created, again)
        self.assertEqual(again.name(), name)
        self.assertIsInstance(again.id(), int)

    def test_get_workspace_creates_only_when_asked(self) -> None:
        name = unique("ws")
        with self.assertRaises(quoll.NotFoundError) as caught:
            self.wl.get_workspace(name)
        self.assertEqual(caught.exception.code, "workspace_not_found")
        made = self.wl.get_workspace(name, create_if_not_exist=True)
        self.assertEqual(self.wl.get_workspace(name).id(), made.id())
        with self.assertRaises(quoll.ConflictError):
            self.wl.create_workspace(name)

    def test_the_current_workspace_defaults_to_the_tokens_default(self) -> None:
        wl = client()
        self.assertTrue(wl.get_current_workspace().is_default())
        self.assertIs(wl.set_current_workspace(self.workspace), self.workspace)
        self.assertEqual(wl.get_current_workspace(), self.workspace)

    def test_pipelines_by_name_raises_entity_not_found_as_the_original(self) -> None:
        from quoll.object import EntityNotFoundError

        name = unique("nopipe")
        with self.assertRaises(EntityNotFoundError) as caught:
            self.wl.pipelines_by_name(name)
        self.assertEqual(caught.exception.code, "pipeline_not_found")
        # Server messages name calls the Python way.
        self.assertIn("build_pipeline(", str(caught.exception))
        built = self.wl.build_pipeline(name)
        self.assertEqual(self.wl.pipelines_by_name(name)[0].id(), built.id())
        self.assertEqual(self.wl.build_pipeline(name).id(), built.id())
        self.assertIn(name, [p.name() for p in self.wl.list_pipelines()])

    def test_a_wrong_token_is_an_auth_error(self) -> None:
        url = self.wl.api_endpoint
        with self.assertRaises(quoll.AuthError) as caught:
            quoll.Client(url=url, token="not-a-token").list_workspaces()
        self.assertEqual(caught.exception.status, 401)


class ConnectionTests(ServerTest):
    def test_connections_print_masked_and_give_details_on_request(self) -> None:
        name = unique("conn")
        secret = "https://example.com/data.arrow?token=s3cr3t"
        created = self.wl.create_connection(name, "HTTPFILE", {"host": secret})
        for text in (str(created), repr(created), created._repr_html_(), str(self.wl.list_connections())):
            self.assertNotIn("s3cr3t", text)
        self.assertIn("*****", str(created))
        self.assertEqual(created.connection_type(), "HTTPFILE")
        self.assertEqual(self.wl.get_connection(name=name).details(), {"host": secret})

        with self.assertRaises(quoll.ConflictError) as caught:
            self.wl.create_connection(name, "HTTPFILE", {"host": "x"})
        self.assertEqual(caught.exception.code, "connection_exists")

        self.workspace.add_connection(name)
        self.assertEqual([c.name() for c in self.workspace.list_connections()], [name])
        self.assertEqual(self.wl.get_connection(name).workspace_names(), [self.workspace.name()])
        self.workspace.remove_connection(name)
        self.assertEqual(str(self.workspace.list_connections()), "(no connections)")

        self.wl.get_connection(name).delete_connection()
        with self.assertRaises(quoll.NotFoundError):
            self.wl.get_connection(name)


if __name__ == "__main__":
    unittest.main()
