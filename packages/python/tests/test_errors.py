import pickle
import unittest

import quoll
from quoll import errors
from quoll._error_codes import ERROR_CODES
from quoll.object import EntityNotFoundError, InvalidNameError


class ErrorTests(unittest.TestCase):
    def test_every_kind_of_the_catalogue_has_a_class(self) -> None:
        for code, entry in ERROR_CODES.items():
            self.assertIn(entry["kind"], errors.KIND_CLASSES, code)

    def test_codes_become_their_classes(self) -> None:
        self.assertIsInstance(errors.error_from_code("pipeline_not_found", "x"), quoll.NotFoundError)
        self.assertIsInstance(errors.error_from_code("connection_exists", "x"), quoll.ConflictError)
        self.assertIsInstance(errors.error_from_code("invalid_name", "x"), quoll.ValidationError)
        self.assertIsInstance(errors.error_from_code("invalid_token", "x"), quoll.AuthError)
        self.assertIsInstance(errors.error_from_code("pipeline_not_deployed", "x"), quoll.NotDeployedError)
        self.assertIsInstance(errors.error_from_code("payload_too_large", "x"), quoll.PayloadTooLargeError)
        internal = errors.error_from_code("internal_error", "x")
        self.assertIs(type(internal), quoll.QuollError)

    def test_the_originals_names_are_the_same_classes(self) -> None:
        self.assertIs(EntityNotFoundError, quoll.NotFoundError)
        self.assertIs(quoll.EntityNotFoundError, quoll.NotFoundError)
        self.assertIs(InvalidNameError, quoll.ValidationError)
        self.assertTrue(issubclass(quoll.ValidationError, ValueError))
        self.assertTrue(issubclass(quoll.NotFoundError, LookupError))

    def test_an_error_answer_is_rebuilt_with_code_status_details_and_python_names(self) -> None:
        err = errors.error_from_response(
            404,
            {
                "error": {
                    "code": "pipeline_not_found",
                    "message": 'No pipeline named "myPipeline"; create it with buildPipeline("myPipeline").',
                    "details": {"name": "myPipeline"},
                }
            },
        )
        self.assertIsInstance(err, quoll.NotFoundError)
        self.assertEqual(err.code, "pipeline_not_found")
        self.assertEqual(err.status, 404)
        self.assertEqual(err.details, {"name": "myPipeline"})
        self.assertEqual(str(err), 'No pipeline named "myPipeline"; create it with build_pipeline("myPipeline").')

    def test_an_answer_without_a_known_code_is_an_internal_error(self) -> None:
        err = errors.error_from_response(502, "<html>bad gateway</html>")
        self.assertIs(type(err), quoll.QuollError)
        self.assertEqual(err.code, "internal_error")
        self.assertIn("502", str(err))

    def test_errors_survive_pickling(self) -> None:
        err = errors.error_from_code("task_not_found", "No task has id x", 404, {"id": "x"})
        back = pickle.loads(pickle.dumps(err))
        self.assertIsInstance(back, quoll.NotFoundError)
        self.assertEqual((back.code, back.status, back.details, str(back)), ("task_not_found", 404, {"id": "x"}, "No task has id x"))


if __name__ == "__main__":
    unittest.main()
